// The pitcrew function app on the Flex Consumption plan (Python 3.11), running as its
// user-assigned identity, with App Service Authentication (Entra ID) in front of the operator
// routes, and the data-plane roles it needs on its own storage and telemetry.
targetScope = 'resourceGroup'

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Function app name (also the host name prefix).')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Python version of the Functions runtime. Reported by scripts/report_versions.py when a newer one is supported.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Upper bound on instances: limits the blast radius (and the bill) of an event storm.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Spread instances over availability zones (Flex Consumption supports it in most regions with zones; set false where the region has none).')
param zoneRedundant bool = true

@description('Resource id of the app identity (user-assigned).')
param appIdentityId string

@description('Client id of the app identity.')
param appIdentityClientId string

@description('Principal (object) id of the app identity.')
param appIdentityPrincipalId string

@description('Name of pitcrew storage account (same resource group).')
param storageAccountName string

@description('Container that holds the deployment package.')
param deploymentContainerName string

@description('Application Insights component name (same resource group).')
param appInsightsName string

@description('Log Analytics workspace name (same resource group).')
param workspaceName string

@description('Client id of the existing Entra app registration that represents the operator API (app roles Reader, Operator, Rotator).')
param operatorApiClientId string

@description('Tenant of that app registration.')
param operatorTenantId string

@description('Path of the policy file inside the deployed package.')
param policyPath string = 'pitcrew.yaml'

@description('Prefix of the tables pitcrew keeps its state and audit trail in.')
param tablePrefix string = 'pitcrew'

@description('Endpoint of the Event Grid topic receiving pitcrew.SecretRotated; empty when there is none.')
param eventGridTopicEndpoint string = ''

@description('Whether pitcrew may request quota increases on its own (mirrors the role assignment).')
param quotaAutoIncrease bool = false

@description('DNS suffix of Service Bus namespaces; pitcrew connects only to <namespace>.<suffix>. Set it for sovereign clouds.')
@minLength(1)
param serviceBusSuffix string = 'servicebus.windows.net'

@description('Settings whose values are secrets (e.g. a webhook URL with a token): [{ name, secretUri }]. Each becomes a Key Vault reference resolved by the app identity; the value never enters the template.')
param keyVaultReferenceSettings array = []

@description('Require an Entra token on /api/alerts (the action group is a Secure Webhook).')
param alertTokenRequired bool = false

@description('Audience of the action group\'s Secure Webhook token (Application ID URI); empty when not required.')
param alertTokenAudience string = ''

@description('Tenant that issues the Secure Webhook token; empty when not required.')
param alertTokenTenantId string = ''

@description('Public https base URL of the app (links in notifications and API answers). Default https://<name>.azurewebsites.net, the default host name of a Flex Consumption app; set it behind a custom domain or front door.')
param publicBaseUrl string = ''

// Built-in role definition ids (identical in every tenant; see docs/security.md).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var logAnalyticsReader = '73c42c96-874c-492b-b04d-ab87d138a893'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

// Settings carry names, ids and endpoints only. No key, connection secret or SAS: storage is
// reached through the identity, telemetry through Entra (APPLICATIONINSIGHTS_AUTHENTICATION_STRING;
// the connection string only locates the ingestion endpoint, as local auth is disabled).
var baseSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.name
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: appIdentityClientId
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: appIdentityClientId
  }
  {
    name: 'AZURE_SUBSCRIPTION_ID'
    value: subscription().subscriptionId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'Authorization=AAD;ClientId=${appIdentityClientId}'
  }
  {
    name: 'PITCREW_POLICY_PATH'
    value: policyPath
  }
  {
    name: 'PITCREW_TABLE_PREFIX'
    value: tablePrefix
  }
  {
    name: 'PITCREW_QUOTA_AUTO_INCREASE'
    value: quotaAutoIncrease ? 'true' : 'false'
  }
  {
    // Service Bus clients connect only to <namespace>.<suffix> (the managed identity's token goes
    // nowhere else); sovereign clouds use another suffix.
    name: 'PITCREW_SERVICEBUS_SUFFIX'
    value: serviceBusSuffix
  }
  {
    // The site's own defaultHostName cannot be read inside its definition; the default host name of
    // an app without a generated domain label is <name>.azurewebsites.net.
    name: 'PITCREW_PUBLIC_BASE_URL'
    value: empty(publicBaseUrl) ? 'https://${name}.azurewebsites.net' : publicBaseUrl
  }
  {
    // CloudEvents webhook validation (OPTIONS /api/events): only Event Grid may subscribe.
    name: 'PITCREW_WEBHOOK_ALLOWED_ORIGINS'
    value: 'eventgrid.azure.net'
  }
  {
    name: 'PITCREW_ALERT_TOKEN_REQUIRED'
    value: alertTokenRequired ? 'true' : 'false'
  }
  {
    name: 'PITCREW_ALERT_TOKEN_AUDIENCE'
    value: alertTokenAudience
  }
  {
    name: 'PITCREW_ALERT_TOKEN_TENANT'
    value: alertTokenTenantId
  }
  {
    // The app role Azure Monitor's service principal holds on the app registration.
    name: 'PITCREW_ALERT_TOKEN_ROLE'
    value: 'ActionGroupsSecureWebhook'
  }
]
// References only: App Service resolves them with the app identity (keyVaultReferenceIdentity).
var keyVaultSettings = [for s in keyVaultReferenceSettings: {
  name: s.name
  value: '@Microsoft.KeyVault(SecretUri=${s.secretUri})'
}]
var topicSettings = empty(eventGridTopicEndpoint) ? [] : [
  {
    name: 'PITCREW_EVENTGRID_TOPIC_ENDPOINT'
    value: eventGridTopicEndpoint
  }
]

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${appIdentityId}': {}
    }
  }
  // checkov:skip=CKV_AZURE_222: The app must stay reachable by Event Grid and Azure Monitor action groups, which deliver over the public endpoint. Every route is authenticated: App Service Authentication, function keys or Event Grid's system key; only /api/health is anonymous and reveals nothing.
  // checkov:skip=CKV_AZURE_212: numberOfWorkers does not apply to Flex Consumption, which scales per function group on demand (maximumInstanceCount below); zone redundancy spreads instances over zones.
  // checkov:skip=CKV_AZURE_213: App Service health check is not available on Flex Consumption; /api/health is probed by the deploy smoke test, and alerts.bicep raises an alert when pitcrew stops running or its functions fail.
  // checkov:skip=CKV_AZURE_17: Client certificates cannot be presented by the callers pitcrew must accept (Event Grid, Azure Monitor action groups); HTTP routes are protected by function keys, Event Grid's system key and App Service Authentication instead.
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: appIdentityId
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(baseSettings, topicSettings, keyVaultSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: appIdentityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// No publishing passwords: deployments (azd deploy) authenticate with Entra tokens only.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service Authentication. The platform rejects unauthenticated calls (401) to every route
// except the four machine-facing ones, which carry their own credential: /api/alerts (function
// key), /api/events (function key; OPTIONS preflight), /runtime/webhooks/eventgrid (Event Grid
// system key) and /api/health (anonymous smoke test). For authenticated calls it validates the
// Entra token and passes the caller's app roles (X-MS-CLIENT-PRINCIPAL) to the app, which checks
// Reader / Operator / Rotator per route. Bearer tokens only: no client secret, no token store.
// This resource is the authsettingsV2 document, not the 'web' site config, but checkov applies its
// site-config checks to every Microsoft.Web/sites/config resource: the skips inside name them.
// (pycep, checkov's parser, fails on five or more comment lines in a row inside an object.)
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: False positive: authentication IS enabled here (platform.enabled, the V2 schema); the check reads the V1 'enabled' property.
  // checkov:skip=CKV_AZURE_63: Not a web config. HTTP logging is an IIS/Windows feature without effect on Linux Flex Consumption; requests are logged to Application Insights and FunctionAppLogs.
  // checkov:skip=CKV_AZURE_65: Not a web config. Detailed error pages are an IIS/Windows feature; errors go to Application Insights.
  // checkov:skip=CKV_AZURE_66: Not a web config. Failed request tracing is an IIS/Windows feature; failures go to Application Insights and raise the function-failures alert.
  parent: site
  // checkov:skip=CKV_AZURE_80: Not a web config, and the app runs Python, not .NET Framework.
  // checkov:skip=CKV_AZURE_88: Not a web config. Azure Files mounts are neither needed nor supported by Flex Consumption; state lives in Table and Blob storage through the identity.
  // checkov:skip=CKV_AZURE_222: Not a web config; public network access is set on the site (see the skip and reason there).
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/api/alerts'
        '/api/events'
        '/api/health'
        '/runtime/webhooks/eventgrid'
      ]
    }
    httpSettings: {
      requireHttps: true
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: operatorApiClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${operatorTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${operatorApiClientId}'
            operatorApiClientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

// Function execution logs into Log Analytics, next to the Application Insights telemetry.
resource siteDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: site
  properties: {
    workspaceId: workspace.id
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
  }
}

// --- Data-plane roles on pitcrew's own resources, each scoped to the single resource. ---

// The Functions host keeps leases, keys and the deployment package in blobs (Blob Data Owner is
// the documented minimum for identity-based AzureWebJobsStorage); pitcrew's failed-message store
// is blobs too.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentityPrincipalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: appIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentityPrincipalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: appIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentityPrincipalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appIdentityPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: appIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource logReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, appIdentityPrincipalId, logAnalyticsReader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', logAnalyticsReader)
    principalId: appIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
