"""One intake phase alone, to run under a sampling profiler: `POST /api/events` batches of
Key Vault near-expiries through the flat `routes:` form (one notification per event) or the
shipped policy's tree, on a fresh Azurite. Prints events/s and the process's CPU per event.
Under the tree the figure stops when the alerts have joined their group: the flush comes
group_wait later (bench/intake.py times it end to end). Not part of `make bench`.

    .venv/bin/py-spy record --gil -r 300 -f raw -o /tmp/intake.raw -- \
        .venv/bin/python bench/profile_intake.py [--events 1500] [--policy flat|shipped]

`--gil` samples only the thread holding the GIL: the Python CPU, not threads waiting on the
emulator. bench/README.md says what it showed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

from common import fresh_azurite
from intake import FLAT_ROUTES, SHIPPED_TREE, batches, bench_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--policy", choices=("flat", "shipped"), default="flat")
    args = parser.parse_args()

    from tests.receiver import Receiver

    receiver = Receiver()
    policy_text = bench_policy(receiver.url,
                               FLAT_ROUTES if args.policy == "flat" else SHIPPED_TREE)
    from pitcrew.bootstrap import get_services, reset_services
    from pitcrew.intake import api
    from pitcrew.runtime import reset_runtime

    with fresh_azurite() as azurite, tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "pitcrew.yaml"
        policy.write_text(policy_text)
        os.environ.update({"AzureWebJobsStorage": azurite.connection_string,
                           "PITCREW_POLICY_PATH": str(policy),
                           "PITCREW_TABLE_PREFIX": "prof" + uuid.uuid4().hex[:8]})
        reset_runtime()
        reset_services()
        get_services()
        headers = {"content-type": "application/json"}
        api.receive_events("POST", headers, batches(2, 2)[0])  # warm: tables, pools
        bodies = batches(args.events, args.batch)
        start, cpu = time.perf_counter(), time.process_time()
        for body in bodies:
            result = api.receive_events("POST", headers, body)
            assert result.status == 200, result.body
        seconds = time.perf_counter() - start
        per_event = (time.process_time() - cpu) * 1000 / args.events
    receiver.close()
    print(f"intake ({args.policy}): {args.events / seconds:.1f} events/s, "
          f"{per_event:.1f} ms CPU an event (all threads)")


if __name__ == "__main__":
    main()
