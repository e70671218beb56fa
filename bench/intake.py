"""Intake throughput end to end: `POST /api/events` batches of Key Vault near-expiry events
(parse, claim, outbox write, webhook delivery to a local receiver, audit record, claim
completed) against a plain loop of Table inserts on the same fresh Azurite in the same run.

Prints handled events/s, the baseline's inserts/s, their ratio (target >= 0.8x), Storage round
trips per event (counted by a transport on the SDK clients, not guessed) and the batch pool's
4 vs 16 workers on one large delivery. Starts its own in-memory Azurite on free ports and stops
it on exit or SIGTERM. Asserts only that every event notifies exactly once.

    .venv/bin/python bench/intake.py [--events 2000] [--batch 50] [--big 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from common import JSON_ENV, REPO, count_round_trips, emit, fmt_trips, fresh_azurite, results_table

SAMPLE = REPO.parent / "shared" / "samples" / "keyvault-secret-near-expiry.eventgrid.json"
TARGET_RATIO = 0.8
# What one event still costs alone: its alert group, alert row and notification log (read and
# write), the outbox row before and after delivery, the group's read-back; claims,
# completions and audit rows go in transactions of up to 100 per delivery.
TRIPS_NOTE = "floor ~8: group, alert, nflog x2, outbox x2, read-back, group save"
GROUPED_NOTE = "per delivery: claims, alerts, audit, completions (a transaction each), group"
# Routes without grouping (the earlier flat form): every event its own notification, at once.
FLAT_ROUTES = "routes:\n  - name: all\n    channels: [hook]\n"
# The documented default tree (docs/alerting.md): group_by [kind, alertRule], group_wait 30s.
DEFAULT_TREE = "route:\n  receiver: hook\n"


def batches(total: int, size: int) -> list[bytes]:
    template = json.loads(SAMPLE.read_text())[0]
    out = []
    for start in range(0, total, size):
        events = []
        for _ in range(min(size, total - start)):
            # Each event a distinct secret (its own alert) and version.
            version = uuid.uuid4().hex
            name = f"s{version[:12]}"
            data = dict(template["data"], Version=version, ObjectName=name,
                        Id=f"https://sample-kv.vault.azure.net/secrets/{name}/{version}")
            events.append(dict(template, id=str(uuid.uuid4()), subject=name, data=data))
        out.append(json.dumps(events).encode())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--big", type=int, default=5000, help="one delivery of this many events")
    parser.add_argument("--table-only", action="store_true", help="print only the figure table")
    args = parser.parse_args()

    from tests.receiver import Receiver

    receiver = Receiver()
    with fresh_azurite() as azurite, tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "pitcrew.yaml"
        channels = ("version: 1\nchannels:\n  hook:\n    type: webhook\n"
                    f"    url: {receiver.url}\n    max_per_minute: 100000\n"
                    "rotation:\n  use_tags: false\n")
        policy.write_text(channels + FLAT_ROUTES)
        os.environ.update(
            {
                "AzureWebJobsStorage": azurite.connection_string,
                "PITCREW_POLICY_PATH": str(policy),
                "PITCREW_TABLE_PREFIX": "bench" + uuid.uuid4().hex[:8],
            }
        )
        trips = count_round_trips()
        from pitcrew.bootstrap import get_services
        from pitcrew.intake import api
        from pitcrew.runtime import get_runtime
        from pitcrew.state import utcnow

        get_services()
        # Baseline: one Table insert per event, one after another, same Azurite, same client.
        table = get_runtime().table("benchplain")
        template = json.loads(SAMPLE.read_text())[0]
        trips.reset()
        start = time.perf_counter()
        for n in range(args.events):
            table.create_entity({"PartitionKey": "p", "RowKey": f"{n:08d}",
                                 "Data": json.dumps(dict(template, id=str(n)))})
        plain = args.events / (time.perf_counter() - start)

        def post(bodies: list[bytes]) -> float:
            start = time.perf_counter()
            for body in bodies:
                result = api.receive_events("POST", {"content-type": "application/json"}, body)
                assert result.status == 200, result.body
                outcomes = {e["outcome"] for e in result.body["events"]}  # type: ignore[index]
                assert outcomes == {"handled"}, outcomes
            return time.perf_counter() - start

        api.receive_events("POST", {"content-type": "application/json"}, batches(2, 2)[0])
        trips.reset()
        told = len(receiver.received)
        seconds = post(batches(args.events, args.batch))
        per_event = trips.snapshot()
        handled = args.events / seconds
        assert len(receiver.received) - told == args.events, "one notification per event"

        # The documented default tree: the delivery's expiries join their group at once;
        # group_wait later (played here by the sweep timer's pass) one notification lists
        # them. Timed from the first POST to the last group's notification delivered.
        policy.write_text(channels + DEFAULT_TREE)
        os.utime(policy, (time.time() + 5, time.time() + 5))
        pipeline = get_services().alerting
        assert pipeline.tree.group_wait == 30, "the default tree's group_wait"
        told = len(receiver.received)
        trips.reset()
        start = time.perf_counter()
        post(batches(args.events, args.batch))
        flushed = pipeline.sweep(now=utcnow() + timedelta(seconds=31))
        grouped_seconds = time.perf_counter() - start
        grouped_trips = trips.snapshot()
        grouped = args.events / grouped_seconds
        listed = sum(int(body.get("facts", {}).get("Firing", 1))
                     for body in receiver.received[told:])
        assert flushed and listed == args.events, (len(flushed), listed)

        # Event Grid caps a delivery at 1 MB: 5,000 events only fit when they are small, so the
        # large delivery holds as many of these events as fit and 5,000 is extrapolated.
        policy.write_text(channels + FLAT_ROUTES)
        os.utime(policy, (time.time() + 10, time.time() + 10))
        size = len(batches(1, 1)[0])
        args.big = min(args.big, (1024 * 1024 - 2) // (size + 1))
        limit = api.MAX_BATCH_EVENTS
        api.MAX_BATCH_EVENTS = max(limit, args.big)  # measured past the limit, to check it
        big: dict[int, float] = {}
        for workers in (4, 16):
            api.BATCH_CONCURRENCY = workers
            big[workers] = post(batches(args.big, args.big))
    receiver.close()

    rows = [
        ("plain Table insert loop (baseline)", f"{plain:.0f} inserts/s", "1.00x", ""),
        (f"POST /api/events, batches of {args.batch}, default tree (grouped)",
         f"{grouped:.0f} events/s", f"{grouped / plain:.2f}x", f">= {TARGET_RATIO}x"),
        ("storage round trips per event, grouped", fmt_trips(grouped_trips, args.events), "",
         GROUPED_NOTE),
        (f"POST /api/events, batches of {args.batch}, one notification per event",
         f"{handled:.0f} events/s", f"{handled / plain:.2f}x", f">= {TARGET_RATIO}x"),
        ("storage round trips per event, one notification each",
         fmt_trips(per_event, args.events), "", TRIPS_NOTE),
    ]
    for workers, secs in big.items():
        rows.append((f"one delivery of {args.big} (1 MB), {workers} workers",
                     f"{secs:.1f} s (limit {limit}: {secs * limit / args.big:.1f} s)",
                     f"{args.big / secs / plain:.2f}x", f"{limit} < 30 s"))
    if os.environ.get(JSON_ENV) != "1":
        print(results_table(rows))
        return
    emit("intake: plain Table insert loop (baseline)", plain, "inserts/s", plain)
    emit(f"intake: POST /api/events, batches of {args.batch}, default tree (grouped)", grouped,
         "events/s", plain, f">= {TARGET_RATIO}x")
    emit("intake: storage round trips per event, grouped",
         sum(grouped_trips.values()) / args.events, "trips", None, GROUPED_NOTE)
    emit(f"intake: POST /api/events, batches of {args.batch}, one notification per event",
         handled, "events/s", plain, f">= {TARGET_RATIO}x")
    emit("intake: storage round trips per event, one notification each",
         sum(per_event.values()) / args.events, "trips", None, TRIPS_NOTE)
    for workers, secs in big.items():
        emit(f"intake: one delivery of {args.big} (1 MB), {workers} workers, at limit {limit}",
             secs * limit / args.big, "s (extrapolated)", None, "< 30 s")


if __name__ == "__main__":
    main()
