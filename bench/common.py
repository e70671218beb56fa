"""What the benches share: a fresh in-memory Azurite on free ports (stopped even on SIGTERM), a
transport counting every Storage round trip the SDK clients make, the results table and
`emit()`, which every bench reports its figures through (bench/run_all.py collects them).

Never imported by the product. Each bench script runs with bench/ on sys.path (Python puts the
script's folder there), so `from common import ...` works.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# The shipped policy's `route:` block (pitcrew.yaml), up to the next top-level key: the benches
# measure that tree, or put the flat form in its place.
SHIPPED_ROUTE_BLOCK = re.compile(r"^route:\n(?:[ #].*\n)+", re.MULTILINE)


def shipped_route() -> str:
    """pitcrew.yaml's `route:` block as it stands."""
    found = SHIPPED_ROUTE_BLOCK.search((REPO / "pitcrew.yaml").read_text())
    if found is None:
        raise RuntimeError("pitcrew.yaml has no route: block: update the benches")
    return found.group(0)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _free_triple() -> tuple[int, int, int]:
    """Three consecutive ports nothing listens on (blob, queue, table), below the ephemeral
    range: a port the kernel handed out for a probe is also what it hands the next outgoing
    connection (the SDK's to another emulator, a webhook call), which could take it before
    Azurite binds it."""
    low, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(20000, max(20001, low - 3))
        ports = (first, first + 1, first + 2)
        ok = True
        for port in ports:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return ports
    raise RuntimeError("no three consecutive free ports")


def _stop_on_sigterm() -> None:
    """SIGTERM (make interrupted, a CI timeout) ends the bench through SystemExit, so the
    atexit hook and `finally` blocks stop the Azurite it started."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


@contextmanager
def fresh_azurite() -> Iterator[Any]:
    """A new in-memory Azurite on free ports (never the shared one on 10000), stopped on exit,
    on SIGTERM and (Linux) when this process dies."""
    from pitcrew_dev.azurite import AzuriteUnavailable, ensure_azurite

    _stop_on_sigterm()
    for attempt in range(3):
        try:
            azurite = ensure_azurite(ports=_free_triple())
            break
        except AzuriteUnavailable:  # another process bound a port first: other ports
            if attempt == 2:
                raise
    assert azurite.started, "a fresh Azurite must be ours"
    try:
        yield azurite
    finally:
        azurite.stop()


class RoundTrips:
    """Counts every HTTP request Storage clients send (retries included), by method."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_method: Counter[str] = Counter()
        self.trace: list[str] | None = None  # set to [] to record "METHOD /path" of each

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_method.values())

    def reset(self) -> None:
        with self._lock:
            self.by_method.clear()

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.by_method)

    def transport(self) -> Any:
        """An azure-core RequestsTransport counting each request it sends (pool sized for
        the batch pool's threads)."""
        from azure.core.pipeline.transport import RequestsTransport

        counter = self

        class CountingTransport(RequestsTransport):  # type: ignore[misc]
            def send(self, request: Any, **kwargs: Any) -> Any:
                with counter._lock:
                    counter.by_method[request.method] += 1
                    if counter.trace is not None:
                        counter.trace.append(f"{request.method} {request.url.split('?')[0]}")
                return super().send(request, **kwargs)

        from pitcrew.runtime import pooled_transport

        session = pooled_transport().session  # the product's pool and retry settings
        return CountingTransport(session=session, session_owner=True)


def count_round_trips() -> RoundTrips:
    """Install a counting transport on the process's runtime (before any client is built)."""
    from pitcrew.runtime import get_runtime

    trips = RoundTrips()
    get_runtime().storage_transport = trips.transport
    return trips


def fmt_trips(trips: Counter[str], per: int) -> str:
    total = sum(trips.values())
    parts = " ".join(f"{m}={n / per:.2f}" for m, n in sorted(trips.items()))
    return f"{total / per:.2f} ({parts})"


def results_table(rows: list[tuple[str, str, str, str]]) -> str:
    """figure | value | ratio to baseline (same run) | target."""
    header = ("figure", "value", "ratio to baseline", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


JSON_ENV = "PITCREW_BENCH_JSON"  # set to 1 (bench/run_all.py does): emit() prints JSON lines


def emit(figure: str, value: float, unit: str, baseline: float | None = None,
         target: str = "", note: str = "") -> None:
    """Report one figure. `baseline` is the same quantity measured in the same run on the same
    emulator (ratio = value / baseline); `target` is issue 16's, as text. With
    PITCREW_BENCH_JSON=1 it prints one JSON object a line (for bench/run_all.py), else a line
    of text."""
    ratio = value / baseline if baseline else None
    if os.environ.get(JSON_ENV) == "1":
        print(json.dumps({"figure": figure, "value": value, "unit": unit, "ratio": ratio,
                          "target": target, "note": note}), flush=True)
        return
    text = f"{figure}: {fmt_value(value)} {unit}"
    if ratio is not None:
        text += f"  ({ratio:.2f}x baseline)"
    if target:
        text += f"  target {target}"
    if note:
        text += f"  [{note}]"
    print(text, flush=True)


def fmt_value(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
