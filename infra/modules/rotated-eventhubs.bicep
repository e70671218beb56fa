// The pitcrew key-rotation role (list and regenerate SAS rule keys, nothing else) on one Event
// Hubs namespace; it covers the namespace's own rules and those of its event hubs.
targetScope = 'resourceGroup'

@description('Event Hubs namespace name, in this resource group.')
param namespaceName string

@description('Resource id of the custom role definition "pitcrew Event Hubs key operator".')
param roleDefinitionId string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: namespaceName
}

resource keyOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace.id, principalId, roleDefinitionId)
  scope: namespace
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
