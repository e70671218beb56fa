// The pitcrew key-rotation role (list and regenerate SAS rule keys, nothing else) on one Service
// Bus namespace; it covers the namespace's own rules and those of its queues and topics.
targetScope = 'resourceGroup'

@description('Service Bus namespace name, in this resource group.')
param namespaceName string

@description('Resource id of the custom role definition "pitcrew Service Bus key operator".')
param roleDefinitionId string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
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
