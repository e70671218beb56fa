// pitcrew's access to one watched Key Vault: Key Vault Secrets Officer on that vault only, so it
// can read a secret's metadata and write the rotated value as a new version. The vault must use
// the Azure RBAC permission model (enableRbacAuthorization), see docs/deploy.md.
targetScope = 'resourceGroup'

@description('Name of the vault, in this resource group.')
param vaultName string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output vaultId string = vault.id
output location string = vault.location
