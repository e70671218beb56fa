// Restore drills (issue 15): the pitcrew restore drill custom role on the scratch resource group.
// This is the ONE role assignment pitcrew makes at resource-group scope, and the documented
// exception to that rule: a drill restores into a Cosmos DB account that does not exist yet, so no
// narrower scope can exist when deploying. The group must be dedicated to drills (pitcrew may
// create and delete any Cosmos DB account in it). The role holds no key or data-plane access.
targetScope = 'resourceGroup'

@description('Resource id of the pitcrew restore drill custom role.')
param roleDefinitionId string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

resource scratchGroup 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleDefinitionId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'pitcrew restore drills: scratch Cosmos DB accounts in this dedicated resource group only.'
  }
}
