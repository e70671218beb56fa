"""Intake throughput: Event Grid batches parsed, claimed and routed, in events per second.

Three figures, each over batches of Key Vault near-expiry events with unique ids:
  parse     - body bytes -> typed, validated events (CPU only);
  claim     - parse + claim each event id in Table storage (Azurite) + route decision;
  full      - the whole handler: parse, claim, outbox write, webhook delivery to a local
              receiver, audit record, claim completed (what one delivery costs end to end),
              one event after another and then as `POST /api/events` handles a batch.
Azurite is started if nothing answers on 10000-10002. Prints figures; asserts nothing.

    .venv/bin/python bench/intake.py [--events 2000] [--batch 50]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLE = REPO.parent / "shared" / "samples" / "keyvault-secret-near-expiry.eventgrid.json"


def batches(total: int, size: int) -> list[bytes]:
    template = json.loads(SAMPLE.read_text())[0]
    out = []
    for start in range(0, total, size):
        events = [dict(template, id=str(uuid.uuid4())) for _ in range(min(size, total - start))]
        out.append(json.dumps(events).encode())
    return out


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:9.0f} events/s  ({seconds * 1000 / count:.3f} ms/event)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()

    from pitcrew.events import only_events, parse_delivery
    from pitcrew.intake.pipeline import validate_event

    bodies = batches(args.events, args.batch)
    start = time.perf_counter()
    for body in bodies:
        for event in only_events(parse_delivery(body)):
            validate_event(event)
    parse_seconds = time.perf_counter() - start

    from pitcrew_dev.azurite import ensure_azurite
    from tests.receiver import Receiver

    azurite = ensure_azurite()
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "pitcrew.yaml"
        policy.write_text(
            "version: 1\nchannels:\n  hook:\n    type: webhook\n"
            f"    url: {receiver.url}\nroutes:\n  - name: all\n    channels: [hook]\n"
        )
        os.environ.update(
            {
                "AzureWebJobsStorage": azurite.connection_string,
                "PITCREW_POLICY_PATH": str(policy),
                "PITCREW_TABLE_PREFIX": "bench" + uuid.uuid4().hex[:8],
            }
        )
        from pitcrew.bootstrap import get_services
        from pitcrew.events import keyvault_event
        from pitcrew.intake.pipeline import process_event
        from pitcrew.notify.messages import expiry_notification

        services = get_services()
        claim_bodies = batches(args.events, args.batch)
        start = time.perf_counter()
        for body in claim_bodies:
            for event in only_events(parse_delivery(body)):
                kv = keyvault_event(event)
                claim = services.state.claim("event", event.id)
                assert claim is not None
                services.router.channels_for(expiry_notification(kv, services.policy))
                services.state.complete(claim, outcome="bench")
        claim_seconds = time.perf_counter() - start

        from pitcrew.intake.api import BATCH_CONCURRENCY, receive_events

        batch_total = max(args.batch, args.events // 2)
        start = time.perf_counter()
        for body in batches(batch_total, args.batch):
            result = receive_events("POST", {"content-type": "application/json"}, body)
            assert result.status == 200, result.body
        batch_seconds = time.perf_counter() - start

        full_total = max(args.batch, args.events // 4)
        full_bodies = batches(full_total, args.batch)
        start = time.perf_counter()
        for body in full_bodies:
            for event in only_events(parse_delivery(body)):
                process_event(event, services)
        full_seconds = time.perf_counter() - start
    receiver.close()
    if azurite.started:
        azurite.stop()
    assert len(receiver.received) == full_total + batch_total, "each event notifies exactly once"

    print(f"batches of {args.batch} Event Grid events (Key Vault SecretNearExpiry)")
    print(f"parse + validate         {args.events:6d} events: {rate(args.events, parse_seconds)}")
    print(f"+ claim + route (Azurite) {args.events:5d} events: {rate(args.events, claim_seconds)}")
    print(f"full handler, one by one {full_total:6d} events: {rate(full_total, full_seconds)}")
    print(
        f"POST /api/events batches {batch_total:5d} events: {rate(batch_total, batch_seconds)}"
        f"  (full handler, {BATCH_CONCURRENCY} events of a batch at a time)"
    )


if __name__ == "__main__":
    main()
