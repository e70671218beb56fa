// Two user-assigned identities, each with one job:
// - the app identity: everything pitcrew does (host storage, rotations, replays, telemetry);
// - the Event Grid delivery identity: only writes undeliverable events to the dead-letter
//   container. Keeping it separate means a compromised Event Grid configuration can never act
//   with pitcrew's rotation rights, and pitcrew's identity needs nothing on Event Grid.
targetScope = 'resourceGroup'

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the app identity.')
param appIdentityName string

@description('Name of the Event Grid dead-letter identity.')
param eventGridIdentityName string

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: appIdentityName
  location: location
  tags: tags
}

resource eventGridIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: eventGridIdentityName
  location: location
  tags: tags
}

output appIdentityId string = appIdentity.id
output appIdentityClientId string = appIdentity.properties.clientId
output appIdentityPrincipalId string = appIdentity.properties.principalId
output eventGridIdentityId string = eventGridIdentity.id
output eventGridIdentityPrincipalId string = eventGridIdentity.properties.principalId
