// The pitcrew consumer-refresher role on one App Service / Function App site that reads a rotated
// secret as a Key Vault reference: after a rotation pitcrew asks it to re-resolve its references
// and restarts it where the policy says so. Nothing else on the site, no other site.
targetScope = 'resourceGroup'

@description('Site (App Service / Function App) name, in this resource group.')
param siteName string

@description('Resource id of the custom role definition "pitcrew consumer refresher".')
param roleDefinitionId string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

resource refresher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(site.id, principalId, roleDefinitionId)
  scope: site
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
