"""Alerting: one pipeline from an alert (or any notification) to the people who must act.

    labels     every alert and notification as a label set, and its fingerprint
    route      the routing tree: matchers, continue, per-route grouping and timing
    inhibit    inhibition rules (a firing source mutes matching targets)
    silence    silences: matchers, a time window, who and why
    dispatch   grouping and timing (group_wait, group_interval, repeat_interval), the flush
    nflog      the notification log: what each receiver was told about each group
    ports      the stores it needs (pitcrew.azure.tables.alerting implements them)
    api        the HTTP and trigger entry points
    policy     the `route:`, `inhibit_rules:`, `time_intervals:` and `alerting:` sections
    receivers  where a notification is delivered (webhook, pagerduty, teams, slack, email,
               eventgrid), built from the policy's `receivers:`

The flow: labels -> route tree -> group (Table rows, ETags) -> flush after group_wait (a storage
queue message made visible then; a timer sweeps anything overdue) -> inhibit, silence, time
intervals -> notification log -> the durable outbox (pitcrew.notify.outbox) -> receivers.
"""
