// pitcrew's access to one watched Key Vault (Azure RBAC permission model, see docs/deploy.md).
//
// With the names of the secrets pitcrew rotates (secretNames): Key Vault Secrets Officer on each
// of those secrets only (read, write a new version, disable the old one), and Key Vault Reader on
// the vault, which lists the metadata of secrets, keys and certificates (names, expiry, tags) for
// the expiry sweep but never a value. Each named secret must exist before provisioning: a role
// assignment needs its scope to exist.
//
// Without names (secretNames empty): Key Vault Secrets Officer on the whole vault, for vaults whose
// rotated secrets are not known when deploying (see docs/deploy.md). Prefer naming them.
targetScope = 'resourceGroup'

@description('Name of the vault, in this resource group.')
param vaultName string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

@description('Secrets pitcrew rotates in this vault. Empty: Secrets Officer on the whole vault.')
param secretNames array = []

var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
var keyVaultReader = '21090545-7ca7-4776-b22c-e363652d74d2'
var perSecret = !empty(secretNames)

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [for secretName in secretNames: {
  parent: vault
  name: secretName
}]

resource secretOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (secretName, i) in secretNames: {
  name: guid(secrets[i].id, principalId, keyVaultSecretsOfficer)
  scope: secrets[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

resource metadataReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (perSecret) {
  name: guid(vault.id, principalId, keyVaultReader)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultReader)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource vaultSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!perSecret) {
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
