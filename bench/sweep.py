"""The expiry sweep over 10,000 objects in 10 vaults, against the local Azure endpoint and
Azurite, through the production adapters.

    .venv/bin/python bench/sweep.py [--vaults 10] [--objects 10000]

Each vault holds 80% secrets, 15% keys, 5% certificates; a quarter of them expire within the
window, a tenth have no expiry, none is owned by a rule (so the figure is the sweep itself:
listing, classifying, one certificate policy read per certificate, the findings table, one
notification per vault). Prints objects/s and the peak of Python memory during the sweep
(tracemalloc, a second run), and the ratio to a baseline run beside it: the same listings alone
(the Key Vault calls no sweep can avoid), as many vaults at once as the sweep.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import emit, fresh_azurite

DAY = 86400


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def seed(vaults: list[str], per_vault: int) -> dict[str, Any]:
    now = int(time.time())
    config: dict[str, Any] = {"vaults": vaults, "secrets": {}, "keys": {}, "certificates": {}}

    def expiry(i: int) -> int | None:
        if i % 10 == 0:
            return None
        return now + (3 * DAY if i % 4 == 0 else 200 * DAY)

    for vault in vaults:
        n_keys, n_certs = per_vault * 15 // 100, per_vault * 5 // 100
        n_secrets = per_vault - n_keys - n_certs
        config["secrets"][vault] = {
            f"secret-{i}": {"value": "bench", "tags": {"owner": "bench"},
                            **({"exp": e} if (e := expiry(i)) else {})}
            for i in range(n_secrets)}
        config["keys"][vault] = {f"key-{i}": {"exp": expiry(i)} for i in range(n_keys)}
        config["certificates"][vault] = {
            f"cert-{i}": {"issuer": "Unknown", "exp": expiry(i) or now + 300 * DAY,
                          "tags": {"owner": "bench"}} for i in range(n_certs)}
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vaults", type=int, default=10)
    parser.add_argument("--objects", type=int, default=10_000)
    args = parser.parse_args()

    with fresh_azurite() as azurite:
        bench(args, azurite)


def bench(args: argparse.Namespace, azurite: Any) -> None:
    from pitcrew_dev.azure_endpoint import start_local_azure

    vaults = [f"bench-kv-{i}" for i in range(args.vaults)]
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    tmp = Path(tempfile.mkdtemp(prefix="pitcrew-bench-"))
    endpoint = start_local_azure(config=seed(vaults, args.objects // args.vaults))
    try:
        policy = tmp / "pitcrew.yaml"
        policy.write_text(
            f"version: 1\nchannels:\n  sink:\n    type: webhook\n"
            f"    url: http://127.0.0.1:{sink.server_address[1]}/hook\n"
            "routes:\n  - name: all\n    channels: [sink]\n"
            f"expiry:\n  vaults: [{', '.join(vaults)}]\n  window_days: 30\n")
        os.environ.update({
            "AzureWebJobsStorage": azurite.connection_string,
            "PITCREW_POLICY_PATH": str(policy),
            "PITCREW_TABLE_PREFIX": "bench" + secrets.token_hex(4),
            **{k: v for k, v in endpoint.environment().items() if k.startswith("PITCREW_")},
        })
        from pitcrew.bootstrap import get_services
        from pitcrew.housekeeping.expiry import PARALLEL_VAULTS, Sweeper

        services = get_services()
        ports = services.housekeeping

        def listed_in(vault: str) -> int:
            return sum(sum(1 for _ in listing.list_properties(vault))
                       for listing in (ports.secrets, ports.keys, ports.certificates))

        def listings() -> int:  # as many vaults at once as the sweep lists
            with ThreadPoolExecutor(max_workers=PARALLEL_VAULTS) as pool:
                return sum(pool.map(listed_in, vaults))

        listings()  # warm the clients and connections
        started = time.perf_counter()
        listed = listings()
        baseline = time.perf_counter() - started

        started = time.perf_counter()
        report = Sweeper(services).run()
        elapsed = time.perf_counter() - started
        swept = sum(len(v.findings) for v in report.vaults)

        tracemalloc.start()
        Sweeper(services).run()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        counts: dict[str, int] = {}
        for vault in report.vaults:
            for cls, n in vault.counts().items():
                counts[cls] = counts.get(cls, 0) + n
        emit("sweep: the Key Vault listings alone (baseline)", listed / baseline, "objects/s",
             listed / baseline, "", f"{listed} objects")
        emit(f"sweep: {swept} objects in {len(vaults)} vaults", swept / elapsed, "objects/s",
             listed / baseline, "", f"{counts}")
        emit("sweep: peak Python memory during a sweep", peak / 1e6, "MB", None, "",
             "tracemalloc")
        emit("sweep: notifications (one per vault)",
             sum(1 for v in report.vaults if v.notified), "", None, f"{len(vaults)}")
    finally:
        endpoint.stop()
        sink.shutdown()


if __name__ == "__main__":
    main()
