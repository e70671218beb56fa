// pitcrew: everything the app needs, least privilege. Deployed by `azd provision` (azure.yaml)
// at subscription scope: it creates pitcrew's resource group and reaches into the resource
// groups of the watched and rotated resources only to add narrowly scoped role assignments and
// the Key Vault system topics. Parameters are explained in docs/deploy.md.
targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(40)
@description('azd environment name (e.g. pitcrew-prod); names the resource group and the custom roles.')
param environmentName string

@minLength(1)
@description('Region of pitcrew resources. Must offer Flex Consumption.')
param location string

@description('Resource group for pitcrew itself; default rg-<environmentName>.')
param resourceGroupName string = ''

@description('Client id of the existing Entra app registration for the operator API (app roles Reader, Operator, Rotator). See docs/deploy.md.')
param operatorApiClientId string

@description('Tenant of the operator app registration; default the deployment tenant.')
param operatorTenantId string = tenant().tenantId

@description('Key Vaults whose expiry events pitcrew handles and whose secrets it rotates: [{ name, resourceGroup, secrets?, keys?, certificates? }]. keys: true when pitcrew.yaml has key rules for the vault (Key Vault Crypto Officer on it); certificates: true when it has certificate rules (Key Vault Certificates Officer on it). secrets: names of the secrets pitcrew rotates there (Secrets Officer on each, Key Vault Reader on the vault); without it, Secrets Officer on the whole vault. The vaults must use Azure RBAC.')
param watchedKeyVaults array = []

@description('Resource ids of Cosmos DB accounts whose keys pitcrew rotates.')
param rotatedCosmosAccountIds array = []

@description('Resource ids of storage accounts whose keys pitcrew rotates.')
param rotatedStorageAccountIds array = []

@description('Resource ids of Service Bus namespaces whose SAS rule keys pitcrew rotates.')
param rotatedServiceBusNamespaceIds array = []

@description('Resource ids of Event Hubs namespaces whose SAS rule keys pitcrew rotates (strategy eventhubs-keys; namespace and event hub rules).')
param rotatedEventHubsNamespaceIds array = []

@description('Resource ids of App Service / Function App sites that read a rotated secret as a Key Vault reference (the consumers and restart_sites of pitcrew.yaml): pitcrew refreshes their references after a rotation and restarts those the policy names.')
param consumerSiteIds array = []

@description('DNS suffix of Service Bus namespaces (PITCREW_SERVICEBUS_SUFFIX): servicebus.windows.net in Azure public cloud; e.g. servicebus.usgovcloudapi.net or servicebus.chinacloudapi.cn in sovereign clouds.')
@minLength(1)
param serviceBusSuffix string = 'servicebus.windows.net'

@description('Service Bus entities whose dead letters pitcrew watches and replays: [{ namespaceResourceId, queue } or { namespaceResourceId, topic, subscription }, optional deadLetterThreshold].')
param watchedServiceBusEntities array = []

@description('Premium Service Bus namespaces (resource ids) whose DeadletterMessagesAvailableWithNoListeners events go to pitcrew.')
param serviceBusEventNamespaceIds array = []

@description('Let pitcrew request quota increases itself (Quota Request Operator on the subscription). Otherwise it only reads quota usage.')
param quotaAutoIncrease bool = false

@description('Resources whose metrics pitcrew reads as capacity (the policy\'s quota.capacity): Monitoring Reader on each (Cosmos DB accounts, Service Bus namespaces, storage accounts).')
param capacityResourceIds array = []

@description('Resource ids of container registries pitcrew purges old images from.')
param purgedRegistryIds array = []

@description('Recovery checks: resource ids of Cosmos DB accounts whose backup policy pitcrew checks and drills restore from (pitcrew recovery checker and Monitoring Reader on each).')
param protectedCosmosAccountIds array = []

@description('Recovery checks: resource ids of storage accounts whose blob protection (soft delete, versioning, point-in-time restore) pitcrew checks (pitcrew recovery checker on each).')
param protectedStorageAccountIds array = []

@description('Restore drills: name of an existing, dedicated resource group (in this subscription) where pitcrew restores scratch Cosmos DB accounts and deletes them again. Empty: no drill rights at all.')
param drillScratchResourceGroup string = ''

@description('Create an Event Grid topic on which pitcrew publishes pitcrew.SecretRotated.')
param eventGridTopicEnabled bool = false

@description('Alert e-mail receivers: [{ name, address }].')
param alertEmailReceivers array = []

@description('Extra alert webhook receivers: [{ name, uri }].')
param alertWebhookReceivers array = []

@description('Secure Webhook for the action group calling /api/alerts: object id of the Entra app registration (application object, `az ad app show --query id`) Azure Monitor gets tokens for (app role ActionGroupsSecureWebhook assigned to Azure Monitor, see docs/deploy.md). Empty: a plain webhook, the function key only.')
param alertWebhookAppObjectId string = ''

@description('Application ID URI of that app registration (the token audience); default api://<operatorApiClientId>.')
param alertWebhookIdentifierUri string = ''

@description('Tenant of that app registration; default the deployment tenant.')
param alertWebhookTenantId string = tenant().tenantId

@description('App settings whose values are secrets, as Key Vault references resolved by the app identity: [{ name, secretUri }], e.g. [{ name: \'PITCREW_OPS_WEBHOOK_URL\', secretUri: \'https://kv-ops.vault.azure.net/secrets/ops-webhook-url\' }] for the url_setting of a webhook channel in pitcrew.yaml. The vault must be in watchedKeyVaults (or grant the identity Key Vault Secrets User on it).')
param keyVaultReferenceSettings array = []

@description('Connect Event Grid subscriptions and the alert webhook to the functions. False on the very first provision (no code yet); the postdeploy hook turns it on.')
param wireFunctionEndpoints bool = false

@description('Storage replication for pitcrew state and audit trail.')
@allowed([
  'Standard_GZRS'
  'Standard_RAGZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param storageSku string = 'Standard_GZRS'

@description('Spread the function app over availability zones.')
param zoneRedundant bool = true

@description('Maximum function app instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Days of log retention.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('Days deleted blobs and containers stay restorable.')
@minValue(7)
@maxValue(365)
param deleteRetentionDays int = 30

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var token = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'pitcrew'
}
var rgName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
var functionAppName = 'func-pitcrew-${token}'
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletters'
var keyVaultEventTypes = [
  'Microsoft.KeyVault.SecretNearExpiry'
  'Microsoft.KeyVault.SecretExpired'
  'Microsoft.KeyVault.KeyNearExpiry'
  'Microsoft.KeyVault.KeyExpired'
  'Microsoft.KeyVault.CertificateNearExpiry'
  'Microsoft.KeyVault.CertificateExpired'
  // A new version resolves the object's expiry alert (its reminders stop).
  'Microsoft.KeyVault.SecretNewVersionCreated'
  'Microsoft.KeyVault.KeyNewVersionCreated'
  'Microsoft.KeyVault.CertificateNewVersionCreated'
]
var alertSecureWebhook = !empty(alertWebhookAppObjectId)
var alertTokenAudience = empty(alertWebhookIdentifierUri) ? 'api://${operatorApiClientId}' : alertWebhookIdentifierUri
var serviceBusEventTypes = [
  'Microsoft.ServiceBus.DeadletterMessagesAvailableWithNoListeners'
]

// ---------------------------------------------------------------------------------------------
// pitcrew's own resource group
// ---------------------------------------------------------------------------------------------

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: rgName
  location: location
  tags: tags
}

module identities 'modules/identities.bicep' = {
  name: 'pitcrew-identities'
  scope: rg
  params: {
    location: location
    tags: tags
    appIdentityName: 'id-pitcrew-${token}'
    eventGridIdentityName: 'id-pitcrew-eventgrid-${token}'
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'pitcrew-monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceName: 'log-pitcrew-${token}'
    appInsightsName: 'appi-pitcrew-${token}'
    retentionInDays: logRetentionDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'pitcrew-storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'stpitcrew${token}'
    skuName: storageSku
    deleteRetentionDays: deleteRetentionDays
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    workspaceId: monitoring.outputs.workspaceId
  }
}

module eventGridTopic 'modules/eventgrid-topic.bicep' = if (eventGridTopicEnabled) {
  name: 'pitcrew-eventgrid-topic'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'evgt-pitcrew-${token}'
    principalId: identities.outputs.appIdentityPrincipalId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'pitcrew-functionapp'
  scope: rg
  params: {
    location: location
    tags: tags
    name: functionAppName
    planName: 'plan-pitcrew-${token}'
    zoneRedundant: zoneRedundant
    maximumInstanceCount: maximumInstanceCount
    appIdentityId: identities.outputs.appIdentityId
    appIdentityClientId: identities.outputs.appIdentityClientId
    appIdentityPrincipalId: identities.outputs.appIdentityPrincipalId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    workspaceName: monitoring.outputs.workspaceName
    operatorApiClientId: operatorApiClientId
    operatorTenantId: operatorTenantId
    eventGridTopicEndpoint: eventGridTopicEnabled ? eventGridTopic.outputs.endpoint : ''
    quotaAutoIncrease: quotaAutoIncrease
    serviceBusSuffix: serviceBusSuffix
    keyVaultReferenceSettings: keyVaultReferenceSettings
    alertTokenRequired: alertSecureWebhook
    alertTokenAudience: alertSecureWebhook ? alertTokenAudience : ''
    alertTokenTenantId: alertSecureWebhook ? alertWebhookTenantId : ''
  }
}

module deadLetterAccess 'modules/deadletter-access.bicep' = {
  name: 'pitcrew-deadletter-access'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    containerName: deadLetterContainerName
    principalId: identities.outputs.eventGridIdentityPrincipalId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'pitcrew-alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: 'pitcrew-${token}'
    functionAppId: functionApp.outputs.id
    functionAppHostName: functionApp.outputs.defaultHostName
    wireEndpoint: wireFunctionEndpoints
    appInsightsId: monitoring.outputs.appInsightsId
    emailReceivers: alertEmailReceivers
    webhookReceivers: alertWebhookReceivers
    watchedEntities: watchedServiceBusEntities
    secureWebhookObjectId: alertWebhookAppObjectId
    secureWebhookIdentifierUri: alertSecureWebhook ? alertTokenAudience : ''
    secureWebhookTenantId: alertSecureWebhook ? alertWebhookTenantId : ''
  }
}

// ---------------------------------------------------------------------------------------------
// Subscription-level definitions (custom roles) and the quota role
// ---------------------------------------------------------------------------------------------

module customRoles 'modules/custom-roles.bicep' = {
  name: 'pitcrew-custom-roles'
  params: {
    environmentName: environmentName
  }
}

module quotaAccess 'modules/quota-access.bicep' = {
  name: 'pitcrew-quota-access'
  params: {
    autoIncrease: quotaAutoIncrease
    quotaReaderRoleId: customRoles.outputs.quotaReaderId
    principalId: identities.outputs.appIdentityPrincipalId
  }
}

module quotaMetricsAccess 'modules/quota-metrics-access.bicep' = [for id in capacityResourceIds: {
  name: 'pitcrew-quota-metrics-${uniqueString(id)}'
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    resourceId: id
    principalId: identities.outputs.appIdentityPrincipalId
  }
}]

// ---------------------------------------------------------------------------------------------
// Watched Key Vaults: Secrets Officer on each rotated secret (or the vault when the names are not
// given) plus metadata-only Key Vault Reader, and the vault's expiry events to on_keyvault_event
// ---------------------------------------------------------------------------------------------

resource vaults 'Microsoft.KeyVault/vaults@2023-07-01' existing = [for v in watchedKeyVaults: {
  name: v.name
  scope: resourceGroup(v.resourceGroup)
}]

module vaultAccess 'modules/keyvault-access.bicep' = [for v in watchedKeyVaults: {
  name: take('pitcrew-kv-access-${v.name}', 64)
  scope: resourceGroup(v.resourceGroup)
  params: {
    vaultName: v.name
    principalId: identities.outputs.appIdentityPrincipalId
    secretNames: contains(v, 'secrets') ? v.secrets : []
    keys: contains(v, 'keys') ? bool(v.keys) : false
    certificates: contains(v, 'certificates') ? bool(v.certificates) : false
  }
}]

module vaultEvents 'modules/eventgrid-subscription.bicep' = [for (v, i) in watchedKeyVaults: {
  name: take('pitcrew-kv-events-${v.name}', 64)
  scope: resourceGroup(v.resourceGroup)
  params: {
    topicName: 'evgst-${v.name}-pitcrew'
    location: vaults[i].location
    tags: tags
    sourceId: vaults[i].id
    topicType: 'Microsoft.KeyVault.vaults'
    includedEventTypes: keyVaultEventTypes
    functionAppId: functionApp.outputs.id
    functionName: 'on_keyvault_event'
    wireEndpoint: wireFunctionEndpoints
    deadLetterIdentityId: identities.outputs.eventGridIdentityId
    deadLetterStorageId: storage.outputs.id
    deadLetterContainerName: deadLetterContainerName
  }
}]

// ---------------------------------------------------------------------------------------------
// Service Bus: dead-letter events (Premium namespaces) and per-entity replay rights
// ---------------------------------------------------------------------------------------------

resource eventNamespaces 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = [for id in serviceBusEventNamespaceIds: {
  name: last(split(id, '/'))
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
}]

module serviceBusEvents 'modules/eventgrid-subscription.bicep' = [for (id, i) in serviceBusEventNamespaceIds: {
  name: take('pitcrew-sb-events-${last(split(id, '/'))}', 64)
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    topicName: 'evgst-${last(split(id, '/'))}-pitcrew'
    location: eventNamespaces[i].location
    tags: tags
    sourceId: id
    topicType: 'Microsoft.ServiceBus.Namespaces'
    includedEventTypes: serviceBusEventTypes
    functionAppId: functionApp.outputs.id
    functionName: 'on_servicebus_deadletter'
    wireEndpoint: wireFunctionEndpoints
    deadLetterIdentityId: identities.outputs.eventGridIdentityId
    deadLetterStorageId: storage.outputs.id
    deadLetterContainerName: deadLetterContainerName
  }
}]

module entityAccess 'modules/servicebus-entity.bicep' = [for (e, i) in watchedServiceBusEntities: {
  name: take('pitcrew-sb-entity-${i}-${uniqueString(e.namespaceResourceId)}', 64)
  scope: resourceGroup(split(e.namespaceResourceId, '/')[2], split(e.namespaceResourceId, '/')[4])
  params: {
    namespaceName: last(split(e.namespaceResourceId, '/'))
    queueName: contains(e, 'queue') ? e.queue : ''
    topicName: contains(e, 'topic') ? e.topic : ''
    subscriptionName: contains(e, 'subscription') ? e.subscription : ''
    principalId: identities.outputs.appIdentityPrincipalId
  }
}]

// ---------------------------------------------------------------------------------------------
// Rotated resources: the key-operator custom role on each one, nowhere else
// ---------------------------------------------------------------------------------------------

module rotatedCosmos 'modules/rotated-cosmos.bicep' = [for id in rotatedCosmosAccountIds: {
  name: take('pitcrew-rot-cosmos-${uniqueString(id)}', 64)
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    accountName: last(split(id, '/'))
    roleDefinitionId: customRoles.outputs.cosmosKeyOperatorId
    principalId: identities.outputs.appIdentityPrincipalId
  }
}]

module rotatedStorage 'modules/rotated-storage.bicep' = [for id in rotatedStorageAccountIds: {
  name: take('pitcrew-rot-storage-${uniqueString(id)}', 64)
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    accountName: last(split(id, '/'))
    roleDefinitionId: customRoles.outputs.storageKeyOperatorId
    principalId: identities.outputs.appIdentityPrincipalId
  }
}]

module rotatedServiceBus 'modules/rotated-servicebus.bicep' = [for id in rotatedServiceBusNamespaceIds: {
  name: take('pitcrew-rot-sb-${uniqueString(id)}', 64)
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    namespaceName: last(split(id, '/'))
    roleDefinitionId: customRoles.outputs.serviceBusKeyOperatorId
    principalId: identities.outputs.appIdentityPrincipalId
  }
}]

module rotatedEventHubs 'modules/rotated-eventhubs.bicep' = [for id in rotatedEventHubsNamespaceIds: {
  name: take('pitcrew-rot-eh-${uniqueString(id)}', 64)
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    namespaceName: last(split(id, '/'))
    roleDefinitionId: customRoles.outputs.eventHubsKeyOperatorId
    principalId: identities.outputs.appIdentityPrincipalId
  }
}]

// ---------------------------------------------------------------------------------------------
// Consumer sites: refresh Key Vault references (and restart) on each one, nowhere else
// ---------------------------------------------------------------------------------------------

module consumerSites 'modules/consumer-site.bicep' = [for id in consumerSiteIds: {
  name: take('pitcrew-consumer-${uniqueString(id)}', 64)
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    siteName: last(split(id, '/'))
    roleDefinitionId: customRoles.outputs.consumerRefresherId
    principalId: identities.outputs.appIdentityPrincipalId
  }
}]

// ---------------------------------------------------------------------------------------------
// Purged container registries
// ---------------------------------------------------------------------------------------------

module registryPurge 'modules/registry-purge.bicep' = [for id in purgedRegistryIds: {
  name: take('pitcrew-acr-${uniqueString(id)}', 64)
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    registryName: last(split(id, '/'))
    principalId: identities.outputs.appIdentityPrincipalId
  }
}]

// ---------------------------------------------------------------------------------------------
// Recovery readiness: read-only checks on each protected resource; restore drills create and delete
// scratch accounts only in the scratch resource group (the one resource-group-scope assignment)
// ---------------------------------------------------------------------------------------------

module recoveryAccess 'modules/recovery-access.bicep' = [for id in concat(protectedCosmosAccountIds, protectedStorageAccountIds): {
  name: take('pitcrew-recovery-${uniqueString(id)}', 64)
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    resourceId: id
    roleDefinitionId: customRoles.outputs.recoveryCheckerId
    principalId: identities.outputs.appIdentityPrincipalId
  }
}]

module drillAccess 'modules/drill-access.bicep' = if (!empty(drillScratchResourceGroup)) {
  name: 'pitcrew-drill-access'
  scope: resourceGroup(drillScratchResourceGroup)
  params: {
    roleDefinitionId: customRoles.outputs.restoreDrillId
    principalId: identities.outputs.appIdentityPrincipalId
  }
}

module restoreSourceAccess 'modules/restore-source-access.bicep' = if (!empty(drillScratchResourceGroup) && !empty(protectedCosmosAccountIds)) {
  name: 'pitcrew-restore-source-access'
  params: {
    roleDefinitionId: customRoles.outputs.restoreSourceId
    principalId: identities.outputs.appIdentityPrincipalId
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd stores them in the environment; the pipeline's smoke test reads them)
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output PITCREW_URL string = 'https://${functionApp.outputs.defaultHostName}'
output PITCREW_IDENTITY_CLIENT_ID string = identities.outputs.appIdentityClientId
output PITCREW_STORAGE_ACCOUNT string = storage.outputs.name
output PITCREW_EVENTGRID_TOPIC_ENDPOINT string = eventGridTopicEnabled ? eventGridTopic.outputs.endpoint : ''
