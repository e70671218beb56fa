"""Fast takeover: seconds from `kill -9` of the worker running a replay job to the job's next
progress under another worker, through the product's own resume path.

    .venv/bin/python bench/takeover.py [--messages 300] [--rate 20] [--scenarios before,after]

On a fresh in-memory Azurite (bench/common.py), the poison queue of a storage-queue source is
seeded and ingested like bench/replay.py, and a rate-limited replay job is requested (it lasts
messages / rate seconds). Two "host" processes stand in for two Functions instances: each
polls the `pitcrew-replay-jobs` queue every 0.5 s and runs `run_replay_job` (the queue
trigger's body) for each message, as the host does. Host A picks the job up; once the job
shows progress it is killed with SIGKILL; host B is started at once. This process plays the
`resume_replay_jobs` timer: `resume_jobs` every 30 s (no longer than the 30 s lease), the first
tick either 2 s before the kill (`before`: the check it schedules at the lease's end finds the
lease the worker renewed since, so it is the next tick, 28 s after the kill and still within
the dead worker's last lease, that schedules the takeover at that lease's end) or just after it
(`after`: the check lands when the dead worker's lease lapses). Either way the takeover comes
at most LEASE + 1 s after the kill. The figure is kill -> the job's counts grow again. Asserts
only that the job then finishes with every message sent.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time

import replay  # bench/replay.py: setup, seed
from common import emit, fresh_azurite

TICK = 30.0  # resume_replay_jobs runs every 30 s (functions/deadletter.py)
POLL = 0.5
TARGET = 60.0


def host() -> None:
    """One Functions instance: drain the replay-jobs queue, run each job message."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient

    from pitcrew.azure.queues import REPLAY_JOBS_QUEUE
    from pitcrew.deadletter.api import run_replay_job

    client = QueueClient.from_connection_string(os.environ[replay.STORAGE], REPLAY_JOBS_QUEUE)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    while True:
        got = False
        for message in client.receive_messages(max_messages=1, visibility_timeout=600):
            got = True
            run_replay_job(base64.b64decode(message.content).decode())
            client.delete_message(message)
        if not got:
            time.sleep(POLL)


def start_host() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--host"], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def done(job_id: str) -> tuple[int, str]:
    from pitcrew.bootstrap import get_services
    from pitcrew.deadletter.replay import _done, get_job

    run = get_job(get_services().deadletter, job_id)
    return _done(run.data["counts"]), run.status


def scenario(messages: int, rate: float, tick: str) -> float:
    from pitcrew.bootstrap import get_services
    from pitcrew.deadletter.ingest import scan
    from pitcrew.deadletter.replay import ReplayRequest, request_replay, resume_jobs

    queue = f"t{os.urandom(5).hex()}"
    replay.setup(queue)
    replay.seed(f"{queue}-poison", messages)
    dl = get_services().deadletter
    while scan(dl, ["bench"])[0].received:
        pass
    group = next(dl.store.groups()).id
    hosts: list[subprocess.Popen[bytes]] = []
    try:
        hosts.append(start_host())
        job = request_replay(dl, ReplayRequest(actor="user:bench", group=group, rate=rate,
                                               batch_size=10))
        while done(job.run_id)[0] == 0:
            time.sleep(0.1)
        if tick == "before":
            resume_jobs(dl)
            ticked = time.monotonic()
            time.sleep(2)  # the worker renews its lease meanwhile (every batch)
        os.kill(hosts[0].pid, signal.SIGKILL)
        killed = time.monotonic()
        hosts[0].wait()
        hosts.append(start_host())
        next_tick = killed if tick == "after" else ticked + TICK
        at_kill, status = done(job.run_id)
        while True:
            now = time.monotonic()
            if now >= next_tick:
                resume_jobs(dl)
                next_tick += TICK
            count, status = done(job.run_id)
            if count > at_kill or status == "succeeded":
                taken = time.monotonic() - killed
                break
            if now - killed > 3 * TICK:
                raise RuntimeError(f"no progress {now - killed:.0f} s after the kill")
            time.sleep(0.2)
        deadline = time.monotonic() + messages / rate + 3 * TICK
        while status != "succeeded" and time.monotonic() < deadline:
            if time.monotonic() >= next_tick:
                resume_jobs(dl)
                next_tick += TICK
            time.sleep(0.5)
            status = done(job.run_id)[1]
        assert status == "succeeded", status
        assert replay.count(queue) >= messages, (replay.count(queue), messages)
        return taken
    finally:
        for child in hosts:
            if child.poll() is None:
                child.terminate()
                child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="the job's messages/s")
    parser.add_argument("--scenarios", default="before,after",
                        help="when the first resume tick runs: before and/or after the kill")
    parser.add_argument("--host", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host:
        host()
        return
    with fresh_azurite() as azurite:
        replay.AZURITE = azurite
        for tick in args.scenarios.split(","):
            seconds = scenario(args.messages, args.rate, tick)
            emit(f"takeover: kill -9 -> progress, resume tick {tick} the kill", seconds, "s",
                 None, f"< {TARGET:.0f} s", "lease 30 s, timer every 30 s")


if __name__ == "__main__":
    main()
