// Capacity metrics (the policy's quota.capacity): Monitoring Reader on each resource whose metric
// pitcrew reads (Cosmos DB accounts, Service Bus namespaces, storage accounts). Read-only; no
// data-plane access of any kind, and never the whole resource group.
targetScope = 'resourceGroup'

@description('Resource id of the resource whose metrics pitcrew reads.')
param resourceId string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

var monitoringReader = '43d0d8ad-25c7-4714-9337-8ba259a9fe05'
var roleDefinitionId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringReader)
var type = toLower('${split(resourceId, '/')[6]}/${split(resourceId, '/')[7]}')
var name = last(split(resourceId, '/'))

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' existing = if (type == 'microsoft.documentdb/databaseaccounts') {
  name: name
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = if (type == 'microsoft.servicebus/namespaces') {
  name: name
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = if (type == 'microsoft.storage/storageaccounts') {
  name: name
}

resource cosmosMetrics 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (type == 'microsoft.documentdb/databaseaccounts') {
  name: guid(resourceId, principalId, monitoringReader)
  scope: cosmos
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource serviceBusMetrics 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (type == 'microsoft.servicebus/namespaces') {
  name: guid(resourceId, principalId, monitoringReader)
  scope: serviceBus
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource storageMetrics 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (type == 'microsoft.storage/storageaccounts') {
  name: guid(resourceId, principalId, monitoringReader)
  scope: storage
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
