// Restore drills (issue 15): pitcrew restore source on the subscription. Cosmos DB authorizes a
// point-in-time restore on the source's RESTORABLE account
// (/subscriptions/<id>/providers/Microsoft.DocumentDB/locations/<region>/restorableDatabaseAccounts/<instanceId>),
// not on the database account or its resource group ("You can't choose resource group as the
// permission scope", azure-docs cosmos-db/continuous-backup-restore-permissions.md), and pitcrew
// finds that instance by listing a region's restorable accounts, which only the subscription scope
// covers. The role holds the restore request, that list, and the status of Cosmos DB async
// operations; writing the restored account needs the drill role, which exists only on the scratch
// resource group. Assigned only when drills are configured.
targetScope = 'subscription'

@description('Resource id of the pitcrew restore source custom role.')
param roleDefinitionId string

@description('Principal (object) id of the pitcrew identity.')
param principalId string

resource restoreSource 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'pitcrew restore drills: restore from a restorable Cosmos DB account; writes only in the scratch resource group.'
  }
}
