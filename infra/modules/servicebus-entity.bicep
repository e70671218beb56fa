// pitcrew's access to one watched Service Bus entity, for dead-letter replay:
// - a queue: Data Receiver (read and settle its dead-letter sub-queue) and Data Sender (resend)
//   on that queue only;
// - a topic subscription: Data Receiver on the subscription only, and Data Sender on its topic
//   only (a replayed message is sent back to the topic, filtered by the subscription's rules).
targetScope = 'resourceGroup'

@description('Service Bus namespace name, in this resource group.')
param namespaceName string

@description('Queue name; empty for a topic subscription.')
param queueName string = ''

@description('Topic name; empty for a queue.')
param topicName string = ''

@description('Subscription name on the topic; empty for a queue.')
param subscriptionName string = ''

@description('Principal (object) id of the pitcrew identity.')
param principalId string

var serviceBusDataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var isQueue = !empty(queueName)

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: namespaceName
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = if (isQueue) {
  parent: namespace
  name: isQueue ? queueName : 'unused'
}

resource topic 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' existing = if (!isQueue) {
  parent: namespace
  name: isQueue ? 'unused' : topicName
}

resource topicSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' existing = if (!isQueue) {
  parent: topic
  name: isQueue ? 'unused' : subscriptionName
}

resource queueReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isQueue) {
  name: guid(queue.id, principalId, serviceBusDataReceiver)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isQueue) {
  name: guid(queue.id, principalId, serviceBusDataSender)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource subscriptionReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!isQueue) {
  name: guid(topicSubscription.id, principalId, serviceBusDataReceiver)
  scope: topicSubscription
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!isQueue) {
  name: guid(topic.id, principalId, serviceBusDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
