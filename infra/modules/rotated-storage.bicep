// The pitcrew key-rotation role (list and regenerate keys, nothing else) on one storage account.
targetScope = 'resourceGroup'

@description('Storage account name, in this resource group.')
param accountName string

@description('Resource id of the custom role definition "pitcrew Storage key operator".')
param roleDefinitionId string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: accountName
}

resource keyOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleDefinitionId)
  scope: account
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
