"""Intake: one pipeline for events and alerts (parse -> claim -> handle -> audit -> complete).

    pipeline   the pipeline itself, and the trigger's entry for a delivered event
    handlers   the handlers, one registry keyed by name, picked by the event they accept
    rejected   a poison event as it is recorded
    api        the HTTP entry points: /api/events, /api/alerts, /api/events/rejected
"""
