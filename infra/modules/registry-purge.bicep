// pitcrew's access to one container registry it purges old images from: AcrDelete (delete
// artifacts) and AcrPull (list repositories, tags and manifests to decide what to delete).
// Neither allows pushing an image or changing the registry.
targetScope = 'resourceGroup'

@description('Container registry name, in this resource group.')
param registryName string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

var acrDelete = 'c2f4ef07-c644-48eb-af81-4b1b4947fb11'
var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource deleter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, acrDelete)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrDelete)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPull)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
