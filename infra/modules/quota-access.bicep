// Quota is a property of the subscription, so this is the one place pitcrew holds a role at
// subscription scope, and it is never Contributor or Owner:
// - auto-increase enabled: Quota Request Operator (read quotas and usage, request increases);
// - otherwise: the read-only "pitcrew quota reader" custom role.
targetScope = 'subscription'

@description('Whether pitcrew may request quota increases on its own.')
param autoIncrease bool

@description('Resource id of the "pitcrew quota reader" custom role.')
param quotaReaderRoleId string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

var quotaRequestOperator = '0e5f05e5-9ab9-446b-b98d-1e2157c94125'
var roleDefinitionId = autoIncrease ? subscriptionResourceId('Microsoft.Authorization/roleDefinitions', quotaRequestOperator) : quotaReaderRoleId

resource quotaRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
