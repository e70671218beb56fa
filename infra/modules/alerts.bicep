// The action group and the alert rules. Every alert goes to the action group, which calls
// pitcrew's /api/alerts webhook (Common Alert Schema) so pitcrew routes it (Teams, Slack,
// PagerDuty... per policy), and to the operators' e-mail and webhook receivers as a fallback
// that works even when pitcrew itself is down.
targetScope = 'resourceGroup'

@description('Azure region of the log alert rules.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name prefix of the alert resources.')
param namePrefix string

@description('Resource id of the pitcrew function app.')
param functionAppId string

@description('Default host name of the pitcrew function app.')
param functionAppHostName string

@description('Add the pitcrew webhook receiver. False until the function code exists (its key does not exist before).')
param wireEndpoint bool

@description('Resource id of Application Insights.')
param appInsightsId string

@description('E-mail receivers: [{ name, address }].')
param emailReceivers array = []

@description('Extra webhook receivers: [{ name, uri }] (e.g. an on-call tool). Stored in the action group.')
param webhookReceivers array = []

@description('Secure Webhook: object id of the app registration (application object) Azure Monitor gets an Entra token for when it calls /api/alerts. Empty: a plain webhook (function key only).')
param secureWebhookObjectId string = ''

@description('Application ID URI of that app registration (the token audience).')
param secureWebhookIdentifierUri string = ''

@description('Tenant of that app registration.')
param secureWebhookTenantId string = ''

@description('Watched Service Bus entities: [{ namespaceResourceId, queue | topic + subscription, deadLetterThreshold? }].')
param watchedEntities array = []

@description('Minimum failed invocations of one function in 15 minutes that raise an alert.')
@minValue(1)
param functionFailureThreshold int = 1

@description('Hours without any invocation after which pitcrew is considered stopped (its timers run at least hourly).')
@minValue(1)
@maxValue(6)
param silenceHours int = 2

// Function-level key of receive_alert: it opens that one route only (not /api/events). As a
// Secure Webhook the action group also sends an Entra token (audience secureWebhookIdentifierUri,
// app role ActionGroupsSecureWebhook) that pitcrew validates (PITCREW_ALERT_TOKEN_* settings).
var secureWebhook = !empty(secureWebhookObjectId)
var pitcrewReceiver = wireEndpoint ? [
  secureWebhook ? {
    name: 'pitcrew'
    serviceUri: 'https://${functionAppHostName}/api/alerts?code=${listKeys('${functionAppId}/functions/receive_alert', '2023-12-01').default}'
    useCommonAlertSchema: true
    useAadAuth: true
    objectId: secureWebhookObjectId
    identifierUri: secureWebhookIdentifierUri
    tenantId: secureWebhookTenantId
  } : {
    name: 'pitcrew'
    serviceUri: 'https://${functionAppHostName}/api/alerts?code=${listKeys('${functionAppId}/functions/receive_alert', '2023-12-01').default}'
    useCommonAlertSchema: true
  }
] : []
var extraWebhooks = [for w in webhookReceivers: {
  name: w.name
  serviceUri: w.uri
  useCommonAlertSchema: true
}]
var emails = [for e in emailReceivers: {
  name: e.name
  emailAddress: e.address
  useCommonAlertSchema: true
}]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-ag'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'pitcrew'
    enabled: true
    emailReceivers: emails
    webhookReceivers: concat(pitcrewReceiver, extraWebhooks)
  }
}

// Dead-letter depth, one rule per watched entity. For a topic subscription the metric's
// EntityName dimension is the topic: the rule watches the topic's dead letters.
resource deadLetterDepth 'Microsoft.Insights/metricAlerts@2018-03-01' = [for (e, i) in watchedEntities: {
  name: '${namePrefix}-dlq-${i}-${contains(e, 'queue') ? e.queue : e.topic}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Dead-lettered messages on ${contains(e, 'queue') ? e.queue : e.topic} above threshold.'
    severity: 2
    enabled: true
    scopes: [
      e.namespaceResourceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'deadlettered'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'DeadletteredMessages'
          operator: 'GreaterThan'
          threshold: contains(e, 'deadLetterThreshold') ? e.deadLetterThreshold : 0
          timeAggregation: 'Maximum'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                contains(e, 'queue') ? e.queue : e.topic
              ]
            }
          ]
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}]

// Function failures: any function whose invocations fail, split by function name.
resource functionFailures 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-function-failures'
  location: location
  tags: tags
  properties: {
    description: 'pitcrew function invocations failed (after the host\'s own retries for that invocation).'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'requests | where success == false | summarize failures = count() by FunctionName = operation_Name'
          timeAggregation: 'Total'
          metricMeasureColumn: 'failures'
          dimensions: [
            {
              name: 'FunctionName'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThanOrEqual'
          threshold: functionFailureThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// pitcrew's own failed rotations: the rotation functions failing, or a rotation the engine gave
// up on (it logs a line starting with "pitcrew.rotation.failed", see docs/deploy.md#telemetry).
resource failedRotations 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-rotation-failed'
  location: location
  tags: tags
  properties: {
    description: 'A secret rotation failed. The secret may expire: see https://github.com/pitcrew/pitcrew/blob/main/docs/runbooks/manual-rotation.md'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: 'union (traces | where message startswith "pitcrew.rotation.failed"), (requests | where success == false and operation_Name in ("on_keyvault_event", "advance_rotations"))'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// Quota usage: pitcrew's quota scan (pitcrew/quota/scan.py) logs, for each quota above a policy
// threshold (percent used or days to exhaustion), one line
//   pitcrew.quota.threshold <quota> <location> <provider> <subscription> level=... percent=... days=...
// One alert per quota, location, provider and subscription; it resolves when the lines stop.
resource quotaUsage 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-quota-usage'
  location: location
  tags: tags
  properties: {
    description: 'A quota is above its threshold. See https://github.com/pitcrew/pitcrew/blob/main/docs/runbooks/quota-increase.md'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'traces | where message startswith "pitcrew.quota.threshold " | extend f = split(message, " ") | extend Quota = tostring(f[1]), Location = tostring(f[2]), Provider = tostring(f[3]), Subscription = tostring(f[4]) | summarize hits = count() by Quota, Location, Provider, Subscription'
          timeAggregation: 'Total'
          metricMeasureColumn: 'hits'
          dimensions: [for d in ['Quota', 'Location', 'Provider', 'Subscription']: {
            name: d
            operator: 'Include'
            values: [
              '*'
            ]
          }]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// pitcrew stopped: no invocation at all for silenceHours (its timers alone run hourly).
resource silent 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-silent'
  location: location
  tags: tags
  properties: {
    description: 'pitcrew has not run any function for ${silenceHours} hours: it may be stopped or unable to start.'
    severity: 1
    enabled: wireEndpoint
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT${silenceHours}H'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'requests'
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output actionGroupId string = actionGroup.id
