"""Rotation throughput against the local Azure endpoint and Azurite, and the engine's own overhead.

    .venv/bin/python bench/rotation.py [--rotations N]

Prints end-to-end rotations per second (Key Vault event -> claim -> run record -> ARM list/
regenerate -> Cosmos DB signed probe -> new secret version -> SecretRotated -> audit ->
notification), and per rotation: time spent in provider calls (Key Vault, ARM, data plane, Event
Grid) and everything else, the engine's own overhead (state, audit, outbox, bookkeeping).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import emit, fresh_azurite

SUB = "00000000-0000-0000-0000-000000000000"
VAULT = "bench-kv"


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Timed:
    """Wraps a port; adds the wall time of every call to a shared counter."""

    def __init__(self, inner: Any, total: list[float]) -> None:
        self._inner, self._total = inner, total
        for name in ("strategy", "key_slots"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self._total[0] += time.perf_counter() - start

        return call


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rotations", type=int, default=40)
    args = parser.parse_args()

    with fresh_azurite() as azurite:
        return bench(args, azurite)


def bench(args: argparse.Namespace, azurite: Any) -> int:
    from pitcrew_dev.azure_endpoint import LocalCredential, start_local_azure

    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}/hook"
    tmp = Path(tempfile.mkdtemp(prefix="pitcrew-bench-"))
    endpoint = start_local_azure(config={"vaults": [VAULT]})
    try:
        rule_lines = ""
        resources = []
        from azure.keyvault.secrets import SecretClient

        client = SecretClient(endpoint.vault_url(VAULT), LocalCredential("bench"),
                              **endpoint.keyvault_client_kwargs())
        for i in range(args.rotations):
            rid = (f"/subscriptions/{SUB}/resourceGroups/bench/providers/"
                   f"Microsoft.DocumentDB/databaseAccounts/bench{i}")
            primary = base64.b64encode(secrets.token_bytes(64)).decode()
            endpoint.add_resource(rid, {"primaryMasterKey": primary})
            version = client.set_secret(f"bench-{i}", primary).properties.version
            resources.append((f"bench-{i}", version))
            rule_lines += (f"    - vault: {VAULT}\n      secret: bench-{i}\n"
                           f"      strategy: cosmos-keys\n      resource: {rid}\n")
        policy = tmp / "pitcrew.yaml"
        policy.write_text(
            f"version: 1\nchannels:\n  sink:\n    type: webhook\n    url: {sink_url}\n"
            "routes:\n  - name: all\n    channels: [sink]\nrotation:\n  secrets:\n" + rule_lines
        )
        os.environ.update({
            "AzureWebJobsStorage": azurite.connection_string,
            "PITCREW_POLICY_PATH": str(policy),
            "PITCREW_TABLE_PREFIX": "bench" + secrets.token_hex(4),
            "PITCREW_EVENTGRID_TOPIC_ENDPOINT": sink_url,
            "PITCREW_EVENTGRID_TOPIC_KEY": "bench",
            **{k: v for k, v in endpoint.environment().items() if k.startswith("PITCREW_")},
        })
        from pitcrew.bootstrap import get_services
        from pitcrew.intake.api import receive_events
        from pitcrew.rotation.ports import RotationPorts

        services = get_services()
        ports = services.rotation
        provider_time = [0.0]
        services.rotation = RotationPorts(
            secrets=Timed(ports.secrets, provider_time),
            providers={k: Timed(v, provider_time) for k, v in ports.providers.items()},
            events=Timed(ports.events, provider_time) if ports.events else None,
            sites=ports.sites,
        )

        def event(secret: str, version: str) -> bytes:
            return json.dumps([{
                "id": secrets.token_hex(8), "eventType": "Microsoft.KeyVault.SecretNearExpiry",
                "subject": secret, "eventTime": "2026-11-21T00:00:00Z", "dataVersion": "1",
                "data": {"VaultName": VAULT, "ObjectType": "Secret", "ObjectName": secret,
                         "Version": version, "EXP": 1766280000},
            }]).encode()

        def rotate(secret: str, version: str) -> None:
            result = receive_events("POST", {"Content-Type": "application/json"},
                                    event(secret, version))
            assert result.status == 200 and "succeeded" in result.body["events"][0]["detail"], \
                result.body

        # Warm up (client construction, TLS sessions, tables) outside the measurement.
        warm = resources.pop()
        rotate(*warm)
        provider_time[0] = 0.0
        durations: list[float] = []
        provider_each: list[float] = []
        started = time.perf_counter()
        for secret, version in resources:
            before_p, t0 = provider_time[0], time.perf_counter()
            rotate(secret, version)
            durations.append(time.perf_counter() - t0)
            provider_each.append(provider_time[0] - before_p)
        elapsed = time.perf_counter() - started
        n = len(resources)
        overhead = [d - p for d, p in zip(durations, provider_each, strict=True)]
        regenerated = sum(sum(endpoint.regenerations(
            f"/subscriptions/{SUB}/resourceGroups/bench/providers/Microsoft.DocumentDB/"
            f"databaseAccounts/bench{i}").values()) for i in range(args.rotations))
        provider = statistics.median(provider_each) * 1000
        emit("rotation: provider calls per rotation (baseline)", provider, "ms median",
             provider, "", "Key Vault, ARM, data plane, Event Grid on the local endpoint")
        emit("rotation: end to end, sequential", n / elapsed, "rotations/s", None, "",
             f"{n} rotations, p95 {_p95(durations) * 1000:.0f} ms")
        emit("rotation: engine overhead per rotation", statistics.median(overhead) * 1000,
             "ms median", provider, "", f"p95 {_p95(overhead) * 1000:.0f} ms; "
             f"{regenerated} keys regenerated for {n + 1} rotations")
    finally:
        endpoint.stop()
        sink.shutdown()
    return 0


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


if __name__ == "__main__":
    raise SystemExit(main())
