// pitcrew's own storage account: the Functions host (AzureWebJobsStorage), the deployment
// package, pitcrew's state and audit tables, its failed-message blobs, the Event Grid
// dead-letter container, and the container for table exports (docs/runbooks/restore-state.md).
// Shared-key access is disabled: every caller uses an Entra identity.
targetScope = 'resourceGroup'

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Replication. Geo-redundant: the audit trail and state survive a zone and a regional outage. Use Standard_GRS where the region has no GZRS.')
@allowed([
  'Standard_GZRS'
  'Standard_RAGZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param skuName string = 'Standard_GZRS'

@description('Days that deleted blobs and containers can be restored (soft delete). Point-in-time restore covers one day less.')
@minValue(7)
@maxValue(365)
param deleteRetentionDays int

@description('Container that receives the Functions deployment package (Flex Consumption).')
param deploymentContainerName string

@description('Container that receives Event Grid events which could not be delivered.')
param deadLetterContainerName string

@description('Container that receives the exports of pitcrew\'s tables (docs/runbooks/restore-state.md).')
param stateExportContainerName string = 'state-exports'

@description('Log Analytics workspace receiving the storage resource logs.')
param workspaceId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  // checkov:skip=CKV_AZURE_35: Flex Consumption reaches its storage over the public endpoint unless the app is VNet-integrated (not in this baseline, see docs/security.md). The endpoint accepts only Entra tokens: shared keys are disabled, HTTPS only, TLS 1.2.
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: without VNet integration the Flex Consumption host needs the public endpoint; it accepts only Entra tokens.
  // checkov:skip=CKV_AZURE_43: The name is `stpitcrew` + uniqueString() (22 lowercase letters and digits, checked by @minLength/@maxLength here and by tests/infra); checkov renders the interpolated name differently from run to run and then fails this check at random.
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

// Recovery practised in advance: versioning + change feed + soft delete make point-in-time
// restore possible for every block blob (docs/runbooks/restore-state.md).
resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    isVersioningEnabled: true
    changeFeed: {
      enabled: true
      retentionInDays: deleteRetentionDays
    }
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
      allowPermanentDelete: false
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    restorePolicy: {
      enabled: true
      days: deleteRetentionDays - 1
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource stateExportContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: stateExportContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// Storage resource logs (reads, writes, deletes on every service) go to Log Analytics: this is
// the evidence trail for who touched pitcrew's state, and replaces classic Storage Analytics.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tableService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

// The account holds the audit trail: a delete lock stops it being removed by accident, even by
// the deploying pipeline (deleting needs the lock removed first, which is an audited change).
resource deleteLock 'Microsoft.Authorization/locks@2020-05-01' = {
  name: 'pitcrew-state-do-not-delete'
  scope: account
  properties: {
    level: 'CanNotDelete'
    notes: 'Holds pitcrew state and audit trail. Remove only through a reviewed pipeline change; see docs/runbooks/restore-state.md.'
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainer.name
output deadLetterContainerName string = deadLetterContainer.name
output stateExportContainerName string = stateExportContainer.name
