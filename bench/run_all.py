"""Run every bench with small sizes, each in its own process (and its own fresh Azurite), and
print ONE table: figure | value | ratio to baseline (same run) | target.

    .venv/bin/python bench/run_all.py [--only intake,replay] [--timeout 600]

Each bench reports through bench/common.py `emit()`; with PITCREW_BENCH_JSON=1 that is one JSON
object a line, which this script collects. A bench that fails or times out gets a row saying so
(and its last output lines on stderr); the others still run. SIGTERM or Ctrl-C ends the running
bench with SIGTERM, which stops the Azurite it started. Sizes are small so `make bench` stays
short; run a bench alone with its defaults for the figures issue 16 states.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import JSON_ENV, fmt_value, results_table

HERE = Path(__file__).resolve().parent

BENCHES: list[tuple[str, list[str]]] = [
    ("cold_start", ["--runs", "3"]),
    ("transactions", ["--rounds", "3"]),
    ("intake", ["--events", "300", "--batch", "50", "--big", "1000"]),
    ("alerts", ["--alerts", "500", "--rules", "20"]),
    ("mixed_load", ["--requests", "300", "--clients", "50"]),
    ("rotation", ["--rotations", "10"]),
    ("quota", ["--quotas", "500", "--scopes", "10", "--scans", "2"]),
    ("sweep", ["--vaults", "4", "--objects", "1000"]),
    ("replay", ["--messages", "2000", "--memory-messages", "2000"]),  # the size
    ("takeover", ["--messages", "300"]),
]

RUNNING: list[subprocess.Popen[str]] = []


def _end_children(signum: int, frame: Any) -> None:
    for child in RUNNING:
        if child.poll() is None:
            child.terminate()  # the bench's own SIGTERM handler stops its Azurite
    for child in RUNNING:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
    raise SystemExit(128 + signum)


def run(name: str, argv: list[str], timeout: float) -> tuple[list[dict[str, Any]], str | None]:
    env = dict(os.environ, **{JSON_ENV: "1"})
    child = subprocess.Popen([sys.executable, str(HERE / f"{name}.py"), *argv], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    RUNNING.append(child)
    try:
        out, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.terminate()
        out, _ = child.communicate(timeout=30)
        error: str | None = f"timed out after {timeout:.0f} s"
    else:
        error = None if child.returncode == 0 else f"exit code {child.returncode}"
    finally:
        RUNNING.remove(child)
    rows: list[dict[str, Any]] = []
    other: list[str] = []
    for line in out.splitlines():
        if line.startswith('{"figure"'):
            rows.append(json.loads(line))
        else:
            other.append(line)
    if error:
        sys.stderr.write(f"--- {name} {error}; its last lines:\n" + "\n".join(other[-15:]) + "\n")
    return rows, error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated bench names")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per bench")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _end_children)
    signal.signal(signal.SIGINT, _end_children)
    wanted = {n for n in args.only.split(",") if n}
    table: list[tuple[str, str, str, str]] = []
    failed = 0
    for name, argv in BENCHES:
        if wanted and name not in wanted:
            continue
        began = time.perf_counter()
        print(f"running bench/{name}.py {' '.join(argv)} ...", file=sys.stderr, flush=True)
        rows, error = run(name, argv, args.timeout)
        print(f"  {len(rows)} figures in {time.perf_counter() - began:.0f} s",
              file=sys.stderr, flush=True)
        for row in rows:
            ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}x"
            value = f"{fmt_value(row['value'])} {row['unit']}".strip()
            if row.get("note"):
                value += f" ({row['note']})"
            table.append((row["figure"], value, ratio, row["target"]))
        if error:
            failed += 1
            table.append((f"{name}: FAILED", error, "", ""))
    print(results_table(table))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
