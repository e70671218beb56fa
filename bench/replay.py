"""Replay throughput and memory against Azurite queues.

    .venv/bin/python bench/replay.py --messages 2000 --memory-messages 100000

1. baseline: a plain receive-send-delete copy loop with azure-storage-queue, from one queue to
   another (32 per receive, like the Functions host);
2. pitcrew: the same number of messages in `<queue>-poison`, ingested into the failed-message
   store (the row with the body in it, in entity-group transactions, then delete at the
   source) and replayed to `<queue>` by the replay worker with every guarantee on (frozen
   selection, per-message ETag-conditional claim, send before settle, progress saved per
   batch), at a rate limit far above what Azurite sustains; the baseline's queues are deleted
   first, so both run on an emulator holding only their own messages;
3. memory: peak Python heap (tracemalloc) and process RSS while replaying `--memory-messages`
   messages, next to a run a tenth that size, to show it does not grow with queue length.

Storage round trips per message are counted on the wire (bench/common.py RoundTrips).

Prints figures; asserts nothing (the repository keeps timing out of tests).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import RoundTrips, emit, fmt_trips, fresh_azurite

TRIPS = RoundTrips()
AZURITE: Any = None  # the fresh Azurite main() started
STORAGE = "AzureWebJobsStorage"
MEMORY_CHUNK = 2_000  # Azurite's delete slows with every message it holds: fill small chunks


def setup(queue: str) -> None:
    from pitcrew.bootstrap import reset_services
    from pitcrew.runtime import get_runtime, reset_runtime

    azurite = AZURITE
    policy = Path(tempfile.mkdtemp()) / "pitcrew.yaml"
    policy.write_text(
        "version: 1\nchannels:\n  none:\n    type: webhook\n    url: http://127.0.0.1:9/\n"
        "    timeout_seconds: 0.2\nroutes:\n  - name: none\n    channels: [none]\n"
        "deadletter:\n  thresholds: [1000000]\n  replay: {max_rate: 5000, default_rate: 5000,"
        " batch_size: 100}\n  scan_max_messages: 100000\n  sources:\n"
        f"    - {{name: bench, type: storage-queue, queue: {queue}}}\n")
    os.environ[STORAGE] = azurite.connection_string
    os.environ["PITCREW_POLICY_PATH"] = str(policy)
    os.environ["PITCREW_TABLE_PREFIX"] = "bench" + uuid.uuid4().hex[:8]
    reset_runtime()
    reset_services()
    get_runtime().storage_transport = TRIPS.transport  # pitcrew's round trips, counted


def queue_client(name: str) -> Any:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(os.environ[STORAGE], name)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def seed(name: str, count: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = queue_client(name)
    text = base64.b64encode(b'{"order": "%d", "sku": "bench", "pad": "' + b"x" * 200 + b'"}')

    def put(i: int) -> None:
        client.send_message(text.decode())

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(put, range(count)))


def count(name: str) -> int:
    return int(queue_client(name).get_queue_properties().approximate_message_count)


def baseline(count_: int) -> float:
    src, dst = f"b{uuid.uuid4().hex[:10]}", f"b{uuid.uuid4().hex[:10]}"
    seed(src, count_)
    source, target = queue_client(src), queue_client(dst)
    started = time.perf_counter()
    moved = 0
    while True:
        batch = list(source.receive_messages(messages_per_page=32, max_messages=32))
        if not batch:
            break
        for message in batch:
            target.send_message(message.content)
            source.delete_message(message)
            moved += 1
    elapsed = time.perf_counter() - started
    assert moved == count_ and count(dst) == count_
    # Azurite's queue delete costs time in proportion to every message it holds (measured:
    # 1.4 ms with none elsewhere, 10 ms with 3,000 in another queue), so the baseline's
    # messages go before the subject runs: both on an emulator holding only their own.
    source.delete_queue()
    target.delete_queue()
    return elapsed


def pitcrew_run(count_: int) -> tuple[float, float, int]:
    from pitcrew.bootstrap import get_services
    from pitcrew.deadletter.ingest import scan
    from pitcrew.deadletter.replay import ReplayRequest, ReplayWorker, request_replay

    queue = f"p{uuid.uuid4().hex[:10]}"
    setup(queue)
    seed(f"{queue}-poison", count_)
    dl = get_services().deadletter
    TRIPS.reset()
    started = time.perf_counter()
    scan(dl, ["bench"])
    ingested = time.perf_counter() - started
    emit("replay: round trips per ingested message", TRIPS.total / count_, "trips", None, "",
         fmt_trips(TRIPS.snapshot(), count_))
    group = next(dl.store.groups()).id
    job = request_replay(dl, ReplayRequest(actor="user:bench", group=group, rate=5000,
                                           batch_size=100))
    TRIPS.reset()
    started = time.perf_counter()
    outcome = ReplayWorker(dl, job.run_id, budget=1e9).run()
    replayed = time.perf_counter() - started
    emit("replay: round trips per replayed message", TRIPS.total / count_, "trips", None, "",
         fmt_trips(TRIPS.snapshot(), count_))
    assert outcome == "succeeded", outcome
    arrived = count(queue)
    assert arrived == count_ and count(f"{queue}-poison") == 0, (arrived, count_)
    return ingested, replayed, arrived


def transient(work: Any, tries: int = 5) -> Any:
    """What the Functions host does for a trigger that raised: run it again. A long run on a
    loaded emulator meets the odd reset connection (a POST is never retried by the SDK)."""
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    from pitcrew.errors import RetryLater

    for attempt in range(tries):
        try:
            return work()
        except (ServiceRequestError, ServiceResponseError, RetryLater) as exc:
            print(f"transient {type(exc).__name__}; running it again", file=sys.stderr)
            if attempt == tries - 1:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def _progress(count_: int, phase: list[str]) -> None:
    """A line on stderr each minute (phase, elapsed, RSS now): a 100,000-message run takes
    most of an hour on a 2-core host and should not look hung."""
    started = time.monotonic()

    def report() -> None:
        while phase[0]:
            time.sleep(60)
            if not phase[0]:
                return
            with open("/proc/self/status") as status:
                rss = next((line.split()[1] for line in status if line.startswith("VmRSS")), "?")
            print(f"replay memory run of {count_}: {phase[0]}, {time.monotonic() - started:.0f} s,"
                  f" RSS now {int(rss) / 1024:.1f} MB" if rss != "?" else "", file=sys.stderr,
                  flush=True)

    threading.Thread(target=report, daemon=True).start()


@dataclass(frozen=True)
class Extras:
    """Arrivals beyond the messages seeded, by where they came from."""

    seeding: int  # the poison queue held more than the bench was told to seed
    replay_marked: int  # sends the replay knows it may have repeated (possibleDuplicate)
    unexplained: int  # neither: a replay double nobody marked (should be 0)

    def notes(self) -> list[str]:
        return [f"{n} {what}" for n, what in (
            (self.seeding, "more ingested than seeded (the seeding's sends repeated)"),
            (self.replay_marked, "replayed twice, marked possibleDuplicate"),
            (self.unexplained, "UNMARKED extra arrivals"),
        ) if n]


def memory(count_: int, *, heap: bool = True) -> tuple[float | None, float, Extras]:
    """Peak traced heap (MB) during the replay of `count_` messages (None without `heap`:
    tracing slows the replay several times), and the process's peak RSS (MB) after."""
    from pitcrew.bootstrap import get_services
    from pitcrew.deadletter.ingest import scan
    from pitcrew.deadletter.replay import (
        ReplayRequest,
        ReplayWorker,
        get_job,
        job_view,
        request_replay,
    )

    queue = f"m{uuid.uuid4().hex[:10]}"
    setup(queue)
    dl = get_services().deadletter
    phase = ["fill and ingest"]
    _progress(count_, phase)
    # Azurite's queue delete costs time in proportion to every message it holds (observed:
    # ~89 msg/s ingest from 2,000 messages, ~10 msg/s from 10,000, under 1 msg/s from 100,000),
    # so the poison queue is filled and drained in chunks; the replay still covers every
    # message.
    for start in range(0, count_, MEMORY_CHUNK):
        seed(f"{queue}-poison", min(MEMORY_CHUNK, count_ - start))
        while transient(lambda: scan(dl, ["bench"])[0].received):
            pass
    group_row = next(dl.store.groups())
    # The group counts what ingest stored: more than seeded means the seeding's sends were
    # repeated by the SDK (a lost answer), before pitcrew ever saw the messages.
    ingested, group = group_row.count, group_row.id
    job = request_replay(dl, ReplayRequest(actor="user:bench", group=group, rate=5000,
                                           batch_size=100))
    phase[0] = "replay"
    if heap:
        tracemalloc.start()
    outcome = transient(lambda: ReplayWorker(dl, job.run_id, budget=1e9).run())
    while outcome == "busy":  # a transient failure left the lease to lapse: as the host would
        time.sleep(5)
        outcome = ReplayWorker(dl, job.run_id, budget=1e9).run()
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if heap else None
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    phase[0] = ""
    arrived = count(queue)
    marked = job_view(get_job(dl, job.run_id))["counts"]["possibleDuplicates"]
    # At least every message. More when the Storage SDK sent one again after its answer was
    # lost: while seeding (32 threads on a loaded emulator; the group then counts more than
    # were seeded) or replaying (the job counts each such send as a possible duplicate and
    # the store marks the message): a queue message has no id to dedupe on.
    assert outcome == "succeeded" and arrived >= count_, (outcome, arrived, count_)
    return peak, rss, Extras(seeding=ingested - count_, replay_marked=marked,
                             unexplained=arrived - ingested - marked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="throughput run size")
    parser.add_argument("--memory-messages", type=int, default=20000,
                        help="memory run size (the target is stated for 100000); 0 skips")
    parser.add_argument("--no-heap", action="store_true",
                        help="memory runs without tracemalloc (several times faster)")
    args = parser.parse_args()
    run(args)


def run(args: argparse.Namespace) -> None:
    """Each part on its own fresh Azurite: the emulator slows with every message it holds."""
    global AZURITE
    n = args.messages
    if n:
        with fresh_azurite() as AZURITE:
            setup("unused")
            throughput(n)
    if args.memory_messages:
        small = max(1000, args.memory_messages // 10)
        for size in (small, args.memory_messages):
            with fresh_azurite() as AZURITE:
                peak, rss, extras = memory(size, heap=not args.no_heap)
            notes = [f"peak heap {peak:.1f} MB"] if peak is not None else []
            notes += extras.notes()
            emit(f"replay: {size} messages, process max RSS", rss, "MB", None, "< 200 MB",
                 "; ".join(notes))


def throughput(n: int) -> None:
    base = baseline(n)
    emit("replay: plain receive-send-delete loop (baseline)", n / base, "msg/s", n / base, "",
         f"{n} messages")
    ingest, replay, _ = pitcrew_run(n)
    emit("replay: pitcrew ingest (store + settle)", n / ingest, "msg/s", n / base, ">= 1.0x")
    emit("replay: pitcrew replay (all guarantees)", n / replay, "msg/s", n / base, ">= 2x")
    emit("replay: ingest + replay, end to end", n / (ingest + replay), "msg/s", n / base,
         ">= 0.8x")


if __name__ == "__main__":
    main()
