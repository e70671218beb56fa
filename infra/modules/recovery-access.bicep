// Recovery checks (issue 15) on one protected resource: the pitcrew recovery checker custom role
// (read the Cosmos DB account's backup policy and its databases and containers, or the storage
// account's blob service properties), and on a Cosmos DB account Monitoring Reader for the
// DocumentCount metric a restore drill compares against. Read-only; no key, no data-plane access,
// and never the whole resource group.
targetScope = 'resourceGroup'

@description('Resource id of the protected Cosmos DB account or storage account.')
param resourceId string

@description('Resource id of the pitcrew recovery checker custom role.')
param roleDefinitionId string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

var monitoringReader = '43d0d8ad-25c7-4714-9337-8ba259a9fe05'
var type = toLower('${split(resourceId, '/')[6]}/${split(resourceId, '/')[7]}')
var name = last(split(resourceId, '/'))
var isCosmos = type == 'microsoft.documentdb/databaseaccounts'
var isStorage = type == 'microsoft.storage/storageaccounts'

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' existing = if (isCosmos) {
  name: name
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = if (isStorage) {
  name: name
}

resource cosmosChecker 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isCosmos) {
  name: guid(resourceId, principalId, roleDefinitionId)
  scope: cosmos
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource cosmosMetrics 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isCosmos) {
  name: guid(resourceId, principalId, monitoringReader)
  scope: cosmos
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringReader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource storageChecker 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isStorage) {
  name: guid(resourceId, principalId, roleDefinitionId)
  scope: storage
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
