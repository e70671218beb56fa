// One Event Grid system topic on a source resource and (once the function code is deployed)
// its subscription to a pitcrew function: event-type filter, bounded retries, and dead-lettering
// of undeliverable events to pitcrew's storage through a dedicated identity.
// Deployed into the source's resource group: a system topic lives beside its source.
targetScope = 'resourceGroup'

@description('System topic name.')
param topicName string

@description('Region of the source resource (a system topic must be in its source region).')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Resource id of the source (Key Vault, Service Bus namespace).')
param sourceId string

@description('System topic type, e.g. Microsoft.KeyVault.vaults.')
param topicType string

@description('Event types delivered to the function; nothing else is.')
param includedEventTypes array

@description('Resource id of the pitcrew function app.')
param functionAppId string

@description('Function that receives the events.')
param functionName string

@description('Create the subscription. False until the function code exists: Event Grid validates an AzureFunction endpoint when the subscription is created.')
param wireEndpoint bool

@description('Resource id of the identity Event Grid uses to write dead letters.')
param deadLetterIdentityId string

@description('Resource id of pitcrew storage account.')
param deadLetterStorageId string

@description('Dead-letter container in that account.')
param deadLetterContainerName string

@description('Delivery attempts before an event is dead-lettered (1-30).')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Minutes an event is retried before it is dead-lettered (1-1440).')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: topicName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${deadLetterIdentityId}': {}
    }
  }
  properties: {
    source: sourceId
    topicType: topicType
  }
}

resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (wireEndpoint) {
  parent: topic
  name: 'to-${replace(functionName, '_', '-')}'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/${functionName}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: includedEventTypes
      enableAdvancedFilteringOnArrays: true
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'UserAssigned'
        userAssignedIdentity: deadLetterIdentityId
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output topicId string = topic.id
