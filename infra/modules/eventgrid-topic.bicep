// Optional custom topic on which pitcrew publishes pitcrew.SecretRotated (CloudEvents 1.0) for
// consumers that reload a rotated secret. Entra-only: local (key/SAS) auth is disabled, and the
// pitcrew identity may only send to this one topic (EventGrid Data Sender).
targetScope = 'resourceGroup'

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Topic name.')
param name string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  // The topic's own identity holds no role here; it lets consumers' subscriptions deliver to
  // their endpoints with Entra auth (deliveryWithResourceIdentity) instead of secrets.
  identity: {
    type: 'SystemAssigned'
  }
  // checkov:skip=CKV_AZURE_193: Consumers subscribe from outside any pitcrew network and publishing needs an Entra token (local auth disabled), so the public endpoint exposes nothing without a role.
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    minimumTlsVersionAllowed: '1.2'
  }
}

resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, principalId, eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output id string = topic.id
output endpoint string = topic.properties.endpoint
