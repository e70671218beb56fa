"""Alert throughput: N Azure Monitor alerts of R rules through intake, grouping and the outbox
against Azurite, to a local webhook receiver.

Each alert is the metric sample with a unique alert id and one of R rule names, posted through
the public entry point (`pitcrew.intake.pipeline.process_alert`: parse -> claim -> handle ->
route -> group -> outbox). When the alerting pipeline groups (a router with `sweep`), every
group is then flushed as if its group_wait had passed, and the outbox drained. Prints alerts/s,
notifications sent and the ratio of notifications to alerts (1.0 without grouping). Azurite is
started if nothing answers on 10000-10002. Asserts nothing.

    .venv/bin/python bench/alerts.py [--alerts 10000] [--rules 100]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLE = REPO.parent / "shared" / "samples" / "common-alert-metric.json"
if not SAMPLE.exists():
    SAMPLE = REPO / "examples" / "samples" / "common-alert-metric.json"


def alert_bodies(total: int, rules: int) -> list[bytes]:
    template = json.loads(SAMPLE.read_text())
    out = []
    for i in range(total):
        payload = copy.deepcopy(template)
        essentials = payload["data"]["essentials"]
        essentials["alertId"] = (f"/subscriptions/00000000-0000-0000-0000-000000000000/providers/"
                                 f"Microsoft.AlertsManagement/alerts/{uuid.uuid4()}")
        essentials["alertRule"] = f"bench-rule-{i % rules:03d}"
        out.append(json.dumps(payload).encode())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--rules", type=int, default=100)
    args = parser.parse_args()

    from common import count_round_trips, emit, fmt_trips, fresh_azurite

    from tests.receiver import Receiver

    bodies = alert_bodies(args.alerts, args.rules)
    receiver = Receiver()
    with fresh_azurite() as azurite, tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "pitcrew.yaml"
        policy.write_text(
            "version: 1\nreceivers:\n  hook:\n    type: webhook\n"
            f"    url: {receiver.url}\n"
            # Alertmanager's defaults: one group per rule, sent after group_wait.
            "route:\n  receiver: hook\n  group_by: [alertRule]\n  group_wait: 30s\n"
            "  group_interval: 5m\n  repeat_interval: 4h\n"
        )
        os.environ.update({
            "AzureWebJobsStorage": azurite.connection_string,
            "PITCREW_POLICY_PATH": str(policy),
            "PITCREW_TABLE_PREFIX": "bench" + uuid.uuid4().hex[:8],
        })
        from pitcrew.bootstrap import get_services
        from pitcrew.events import parse_alert
        from pitcrew.intake.pipeline import process_alert

        trips = count_round_trips()
        services = get_services()
        start = time.perf_counter()
        for body in bodies:
            process_alert(parse_alert(body), services)
        intake_seconds = time.perf_counter() - start
        intake_trips = trips.snapshot()
        trips.reset()

        flush_start = time.perf_counter()
        grouping = hasattr(services.router, "sweep")
        if grouping:
            later = datetime.now(UTC) + timedelta(hours=1)
            services.router.sweep(now=later)  # type: ignore[attr-defined]
        services.outbox.drain(services.channels)
        flush_seconds = time.perf_counter() - flush_start
        flush_trips = trips.snapshot()
    receiver.close()

    sent = len(receiver.received)
    total = intake_seconds + flush_seconds
    mode = "grouped" if grouping else "no grouping in this build: one notification each"
    emit(f"alerts: intake, {args.alerts} alerts of {args.rules} rules", args.alerts /
         intake_seconds, "alerts/s", None, "", mode)
    emit("alerts: round trips per alert, intake", sum(intake_trips.values()) / args.alerts,
         "trips", None, "", fmt_trips(intake_trips, args.alerts))
    emit("alerts: round trips per alert, flush + outbox", sum(flush_trips.values()) /
         args.alerts, "trips", None, "", fmt_trips(flush_trips, args.alerts))
    emit("alerts: end to end", args.alerts / total, "alerts/s", None, "",
         f"flush + outbox {flush_seconds:.2f} s")
    emit("alerts: notifications per alert", sent / args.alerts, "", None, "",
         f"{sent} notifications")

if __name__ == "__main__":
    main()
