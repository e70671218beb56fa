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
//
// Keys and certificates (expiry sweep rules, issue 14), only when the deploy parameters say this
// vault has such rules: Key Vault Crypto Officer on the vault (rotate a key, read and set its
// rotation policy) when keys is true; Key Vault Certificates Officer on the vault (read a
// certificate's policy and issuer, start a renewal, read the pending operation) when certificates
// is true. Neither is assigned otherwise.
targetScope = 'resourceGroup'

@description('Name of the vault, in this resource group.')
param vaultName string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

@description('Secrets pitcrew rotates in this vault. Empty: Secrets Officer on the whole vault.')
param secretNames array = []

@description('The vault has key rules: Key Vault Crypto Officer on the vault.')
param keys bool = false

@description('The vault has certificate rules: Key Vault Certificates Officer on the vault.')
param certificates bool = false

var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
var keyVaultReader = '21090545-7ca7-4776-b22c-e363652d74d2'
var keyVaultCryptoOfficer = '14b46e9e-c2b7-41b4-b07b-48a6ebf60603'
var keyVaultCertificatesOfficer = 'a4417e6f-fecd-4de8-b567-7b0420556985'
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

resource keyOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (keys) {
  name: guid(vault.id, principalId, keyVaultCryptoOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCryptoOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource certificateOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (certificates) {
  name: guid(vault.id, principalId, keyVaultCertificatesOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCertificatesOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output vaultId string = vault.id
output location string = vault.location
