"""Cold start: how long a fresh interpreter takes to import function_app and index every
function, beside the time to import eagerly every Azure SDK the app uses.

Target: indexing under 200 ms here, and under 40% of the eager figure (SDKs imported on first
use, not at start). Prints figures; asserts nothing.

    .venv/bin/python bench/cold_start.py [--runs 10]
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import emit

REPO = Path(__file__).resolve().parents[1]

INDEX = (
    "import time; t = time.perf_counter();"
    "import function_app; fns = function_app.app.get_functions();"
    "print((time.perf_counter() - t) * 1000, len(fns))"
)
# Every SDK (and engine library) the app uses somewhere, imported up front.
EAGER_MODULES = [
    "azure.functions",
    "azure.identity",
    "azure.data.tables",
    "azure.storage.queue",
    "azure.storage.blob",
    "azure.keyvault.secrets",
    "azure.eventgrid",
    "azure.servicebus",
    "azure.mgmt.cosmosdb",
    "azure.mgmt.storage",
    "azure.mgmt.servicebus",
    "azure.mgmt.eventhub",
    "azure.mgmt.web",
    "pydantic",
    "yaml",
    "httpx",
]


def _available(modules: list[str]) -> list[str]:
    probe = (
        "import importlib.util, sys; print(','.join(m for m in sys.argv[1:] "
        "if importlib.util.find_spec(m.split('.')[0]) and importlib.util.find_spec(m)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *modules],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.strip()
    return [m for m in out.split(",") if m]


# Bytecode is written, whatever the caller's PYTHONDONTWRITEBYTECODE says, into a cache of the
# bench's own: the SDKs' bytecode was written when pip installed them, so the app's must be too,
# or the subject would pay for compiling its sources on every run and the baseline would not.
_PYCACHE = tempfile.mkdtemp(prefix="pitcrew-cold-start-")
atexit.register(shutil.rmtree, _PYCACHE, ignore_errors=True)
_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
_ENV["PYTHONPYCACHEPREFIX"] = _PYCACHE


def _run(code: str) -> float:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=REPO, env=_ENV)
    return float(result.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    modules = _available(EAGER_MODULES)
    eager = (
        "import time; t = time.perf_counter();"
        + "".join(f"import {m};" for m in modules)
        + "print((time.perf_counter() - t) * 1000)"
    )
    _run(INDEX)  # warm the bytecode cache once so both sides compare like with like
    _run(eager)
    index_ms = [_run(INDEX) for _ in range(args.runs)]
    eager_ms = [_run(eager) for _ in range(args.runs)]
    functions = subprocess.run([sys.executable, "-c", INDEX], capture_output=True, text=True,
                               check=True, cwd=REPO, env=_ENV).stdout.split()[1]
    index_median, eager_median = statistics.median(index_ms), statistics.median(eager_ms)
    note = f"median of {args.runs} fresh interpreters"
    emit(f"cold start: eager import of {len(modules)} SDKs (baseline)", eager_median, "ms",
         eager_median, "", note)
    emit(f"cold start: import function_app + index {functions} functions", index_median, "ms",
         eager_median, "< 200 ms and < 0.40x", note)

if __name__ == "__main__":
    main()
