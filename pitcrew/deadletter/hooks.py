"""How events and alerts start an ingest (intake's handlers call these)."""

from __future__ import annotations

import logging

from pitcrew.bootstrap import Services
from pitcrew.deadletter.events import DeadletterAvailable, deadletter_alert_entities
from pitcrew.deadletter.ingest import IngestReport, ingest_source, sources_for_entity
from pitcrew.events import AlertEvent

log = logging.getLogger(__name__)


def handle_servicebus_deadletter(event: DeadletterAvailable, services: Services) -> str:
    """Ingest the entity's dead-letter queue. Raises (the platform retries) if it fails."""
    dl = services.deadletter
    path = event.queue or f"{event.topic}/subscriptions/{event.subscription}"
    configs = sources_for_entity(dl, event.namespace, path)
    if not configs:
        log.warning("dead letters at %s, which no deadletter source in the policy covers",
                    event.entity)
        return f"no deadletter source for {event.entity}"
    reports = [ingest_source(dl, c) for c in configs]
    return "ingested " + ", ".join(_summary(r) for r in reports)


def _summary(report: IngestReport) -> str:
    """What one ingest did, never more: messages it could not settle are named."""
    done = f"{report.source}: {report.stored} new"
    if report.unsettled:
        done += (f", {report.unsettled} not settled at the source (stored; the next ingest "
                 "settles them)")
    return done


def ingest_for_alert(alert: AlertEvent, services: Services) -> list[str]:
    """A firing dead-letter depth alert also ingests the entity it names. A failure is logged
    and left to the scan timer: the messages stay at their source, nothing is lost."""
    done: list[str] = []
    pairs = deadletter_alert_entities(alert)
    if not pairs:
        return done
    dl = services.deadletter
    for namespace, entity in pairs:
        for config in sources_for_entity(dl, namespace, entity):
            try:
                done.append(_summary(ingest_source(dl, config)))
            except Exception:
                log.exception("ingest of %s after alert %s failed; the scan timer retries",
                              config.name, alert.rule)
    return done
