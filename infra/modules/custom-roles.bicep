// Custom roles holding only what a key rotation needs: list the current keys and regenerate one,
// and, on the sites that consume a rotated secret, re-read their Key Vault references and restart.
// They can read nothing else, change no other setting, and grant no data-plane access. They are
// defined once per subscription but ASSIGNED only on each rotated resource (rotated-*.bicep) and
// each consumer site (consumer-site.bicep).
targetScope = 'subscription'

@description('azd environment name; role names are tenant-unique, so each environment has its own.')
param environmentName string

resource cosmosKeyOperator 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'pitcrew-cosmos-key-operator')
  properties: {
    roleName: 'pitcrew Cosmos DB key operator (${environmentName})'
    description: 'List and regenerate the account keys of a Cosmos DB account. Assigned by pitcrew on each rotated account only.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.DocumentDB/databaseAccounts/read'
          'Microsoft.DocumentDB/databaseAccounts/listKeys/action'
          'Microsoft.DocumentDB/databaseAccounts/regenerateKey/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource storageKeyOperator 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'pitcrew-storage-key-operator')
  properties: {
    roleName: 'pitcrew Storage key operator (${environmentName})'
    description: 'List and regenerate the access keys of a storage account. Assigned by pitcrew on each rotated account only.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Storage/storageAccounts/read'
          'Microsoft.Storage/storageAccounts/listkeys/action'
          'Microsoft.Storage/storageAccounts/regeneratekey/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource serviceBusKeyOperator 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'pitcrew-servicebus-key-operator')
  properties: {
    roleName: 'pitcrew Service Bus key operator (${environmentName})'
    description: 'List and regenerate the keys of Service Bus SAS authorization rules (namespace, queue, topic). Assigned by pitcrew on each rotated namespace only.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.ServiceBus/namespaces/authorizationRules/read'
          'Microsoft.ServiceBus/namespaces/authorizationRules/listKeys/action'
          'Microsoft.ServiceBus/namespaces/authorizationRules/regenerateKeys/action'
          'Microsoft.ServiceBus/namespaces/queues/authorizationRules/read'
          'Microsoft.ServiceBus/namespaces/queues/authorizationRules/listKeys/action'
          'Microsoft.ServiceBus/namespaces/queues/authorizationRules/regenerateKeys/action'
          'Microsoft.ServiceBus/namespaces/topics/authorizationRules/read'
          'Microsoft.ServiceBus/namespaces/topics/authorizationRules/listKeys/action'
          'Microsoft.ServiceBus/namespaces/topics/authorizationRules/regenerateKeys/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

resource eventHubsKeyOperator 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'pitcrew-eventhubs-key-operator')
  properties: {
    roleName: 'pitcrew Event Hubs key operator (${environmentName})'
    description: 'List and regenerate the keys of Event Hubs SAS authorization rules (namespace, event hub). Assigned by pitcrew on each rotated namespace only.'
    type: 'CustomRole'
    permissions: [
      {
        // Spelled as in the Microsoft.EventHub operations list (listkeys, regenerateKeys).
        actions: [
          'Microsoft.EventHub/namespaces/authorizationRules/read'
          'Microsoft.EventHub/namespaces/authorizationRules/listkeys/action'
          'Microsoft.EventHub/namespaces/authorizationRules/regenerateKeys/action'
          'Microsoft.EventHub/namespaces/eventhubs/authorizationRules/read'
          'Microsoft.EventHub/namespaces/eventhubs/authorizationRules/listkeys/action'
          'Microsoft.EventHub/namespaces/eventhubs/authorizationRules/regenerateKeys/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

// After a rotation pitcrew asks each consumer site to re-resolve its Key Vault references
// (POST {site}/config/configreferences/appsettings/refresh) and restarts it where the policy says
// so. The refresh is not in Microsoft.Web's published operations list; ARM names a POST after the
// resource type of its path plus the final segment (POST config/appsettings/list is authorized as
// sites/config/list/action), which should put the refresh under sites/config/appsettings/. The only
// published operation there is appsettings/read (reference status, never a value). Of published
// operations the wildcard covers nothing else: not config/list (setting values), config/Write or
// config/web/appsettings/write. docs/security.md says how to replace it with the exact name.
resource consumerRefresher 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'pitcrew-consumer-refresher')
  properties: {
    roleName: 'pitcrew consumer refresher (${environmentName})'
    description: 'Re-resolve the Key Vault references of an App Service / Function App site and restart it. Cannot read or change app settings. Assigned by pitcrew on each consumer site only.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Web/sites/read'
          'Microsoft.Web/sites/restart/action'
          'Microsoft.Web/sites/config/appsettings/*'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

// Read-only view of quota usage, for the quota scan when pitcrew may not request increases
// (when it may, Quota Request Operator includes these reads).
resource quotaReader 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'pitcrew-quota-reader')
  properties: {
    roleName: 'pitcrew quota reader (${environmentName})'
    description: 'Read quota limits and current usage. No write of any kind.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Quota/usages/read'
          'Microsoft.Quota/quotas/read'
          'Microsoft.Quota/quotaRequests/read'
          'Microsoft.Compute/locations/usages/read'
          'Microsoft.Network/locations/usages/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

// Recovery checks (issue 15): read a protected resource's backup and protection settings. Assigned
// on each protected Cosmos DB account and storage account only (recovery-access.bicep).
resource recoveryChecker 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'pitcrew-recovery-checker')
  properties: {
    roleName: 'pitcrew recovery checker (${environmentName})'
    description: 'Read the backup policy, databases and containers of a Cosmos DB account, or the blob service properties of a storage account. No keys, no writes. Assigned by pitcrew on each protected resource only.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.DocumentDB/databaseAccounts/read'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/read'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/read'
          'Microsoft.Storage/storageAccounts/blobServices/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

// Restore drills (issue 15): create the scratch account a point-in-time restore writes, read it
// back (containers, DocumentCount), follow the async operation, and delete it. Assigned on the
// scratch resource group only (drill-access.bicep): the one resource-group-scope assignment.
resource restoreDrill 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'pitcrew-restore-drill')
  properties: {
    roleName: 'pitcrew restore drill (${environmentName})'
    description: 'Create, read and delete scratch Cosmos DB accounts restored by a drill, read their containers and metrics and the status of their operations. No keys, no data-plane access. Assigned by pitcrew on the scratch resource group only.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.DocumentDB/databaseAccounts/read'
          'Microsoft.DocumentDB/databaseAccounts/write'
          'Microsoft.DocumentDB/databaseAccounts/delete'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/read'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/read'
          'Microsoft.DocumentDB/locations/operationsStatus/read'
          'Microsoft.DocumentDB/operationResults/read'
          'Microsoft.Insights/metrics/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

// Restore drills (issue 15): the restore request on a source's restorable account, which Cosmos DB
// authorizes only at that restorable account or the subscription (restore-source-access.bicep).
resource restoreSource 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'pitcrew-restore-source')
  properties: {
    roleName: 'pitcrew restore source (${environmentName})'
    description: 'List restorable Cosmos DB accounts, submit a point-in-time restore from one, and read the status of Cosmos DB async operations. Creates nothing by itself. Assigned by pitcrew on the subscription only when restore drills are configured.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.DocumentDB/locations/restorableDatabaseAccounts/read'
          'Microsoft.DocumentDB/locations/restorableDatabaseAccounts/restore/action'
          'Microsoft.DocumentDB/locations/operationsStatus/read'
          'Microsoft.DocumentDB/operationResults/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

output cosmosKeyOperatorId string = cosmosKeyOperator.id
output storageKeyOperatorId string = storageKeyOperator.id
output serviceBusKeyOperatorId string = serviceBusKeyOperator.id
output eventHubsKeyOperatorId string = eventHubsKeyOperator.id
output consumerRefresherId string = consumerRefresher.id
output quotaReaderId string = quotaReader.id
output recoveryCheckerId string = recoveryChecker.id
output restoreDrillId string = restoreDrill.id
output restoreSourceId string = restoreSource.id
