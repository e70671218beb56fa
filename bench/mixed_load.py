"""Mixed load over HTTP, as issue 16 measured it: `--clients` concurrent clients (50) POSTing in
turn a one-event Event Grid delivery to /api/events and an Azure Monitor alert to /api/alerts,
through the local host (real HTTP, the function key, the real function app), each policy on a
fresh Azurite of its own. Prints requests/s and the p50 and p95 answer times, for:

- the policy shipped in the repo (pitcrew.yaml: the routing tree, grouped by kind and alert
  rule, group_wait 30 s), its webhook pointed at a local receiver;
- the same policy with the flat `routes:` list of earlier policies instead (each notification
  a group of its own, sent at once).

The process logs at INFO, as a Function App does (to a null stream here); `--sdk-http-logging`
lets azure-core's per-request records through, as pitcrew did before PITCREW_SDK_HTTP_LOGGING.
Asserts only that every request was answered 200 and every event handled.

    .venv/bin/python bench/mixed_load.py [--requests 1000] [--clients 50] [--sdk-http-logging]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import REPO, emit, fresh_azurite, shipped_route

SAMPLES = REPO.parent / "shared" / "samples"
if not SAMPLES.is_dir():
    SAMPLES = REPO / "examples" / "samples"
KEY = "bench-function-key"
FLAT = "routes:\n  - name: everything-to-ops\n    channels: [ops-webhook]\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--sdk-http-logging", action="store_true",
                        help="PITCREW_SDK_HTTP_LOGGING=true: azure-core logs every request")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    os.environ["PITCREW_SDK_HTTP_LOGGING"] = "true" if args.sdk_http_logging else "false"

    import httpx

    import function_app
    from pitcrew.bootstrap import reset_services
    from pitcrew.runtime import reset_runtime
    from pitcrew_dev.host import build_host, serving
    from tests.receiver import Receiver

    event_template = json.loads(
        (SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_text())[0]
    alert_template = json.loads((SAMPLES / "common-alert-metric.json").read_text())
    shipped = (REPO / "pitcrew.yaml").read_text()

    def event_body(n: int) -> bytes:
        version = uuid.uuid4().hex
        name = f"s{version[:12]}"
        data = dict(event_template["data"], Version=version, ObjectName=name,
                    Id=f"https://sample-kv.vault.azure.net/secrets/{name}/{version}")
        return json.dumps([dict(event_template, id=str(uuid.uuid4()), subject=name,
                                data=data)]).encode()

    def alert_body(n: int) -> bytes:
        payload = json.loads(json.dumps(alert_template))
        essentials = payload["data"]["essentials"]
        essentials["alertId"] = ("/subscriptions/0/providers/Microsoft.AlertsManagement/alerts/"
                                 + uuid.uuid4().hex)
        essentials["alertRule"] = f"bench-rule-{n % 20}"
        return json.dumps(payload).encode()

    def measure(policy_text: str) -> tuple[float, list[float]]:
        receiver = Receiver()
        with fresh_azurite() as azurite, tempfile.TemporaryDirectory() as tmp:
            policy = Path(tmp) / "pitcrew.yaml"
            policy.write_text(policy_text)
            os.environ.update({
                "AzureWebJobsStorage": azurite.connection_string,
                "PITCREW_POLICY_PATH": str(policy),
                "PITCREW_TABLE_PREFIX": "bench" + uuid.uuid4().hex[:8],
                "PITCREW_OPS_WEBHOOK_URL": receiver.url,
            })
            reset_runtime()
            reset_services()
            host = build_host(function_app.app, function_key=KEY, settings=os.environ)
            bodies = [("events", event_body(n)) if n % 2 == 0 else ("alerts", alert_body(n))
                      for n in range(args.requests + 2 * args.clients)]
            with serving(host) as url, httpx.Client(
                    base_url=url, headers={"x-functions-key": KEY,
                                           "content-type": "application/json"},
                    limits=httpx.Limits(max_connections=args.clients), timeout=60) as client:

                def post(item: tuple[str, bytes]) -> float:
                    start = time.perf_counter()
                    response = client.post(f"/api/{item[0]}", content=item[1])
                    assert response.status_code == 200, (item[0], response.text[:300])
                    if item[0] == "events":
                        outcome = response.json()["events"][0]["outcome"]
                        assert outcome == "handled", outcome
                    return time.perf_counter() - start

                with ThreadPoolExecutor(args.clients) as pool:
                    # Warm: the tables exist and the host has imported what it uses.
                    list(pool.map(post, bodies[:2 * args.clients]))
                    start = time.perf_counter()
                    latencies = list(pool.map(post, bodies[2 * args.clients:]))
                    seconds = time.perf_counter() - start
        receiver.close()
        reset_runtime()
        reset_services()
        return args.requests / seconds, sorted(latencies)

    flat = shipped.replace(shipped_route(), FLAT)
    for label, policy_text in (("shipped policy (routing tree)", shipped),
                               ("flat routes, one notification each", flat)):
        rate, latencies = measure(policy_text)
        p50 = statistics.median(latencies)
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        note = f"{args.clients} clients, {args.requests} requests; p50 {p50:.2f} s, p95 {p95:.2f} s"
        emit(f"mixed load: events and alerts over HTTP, {label}", rate, "req/s", note=note)
        emit(f"mixed load: p95 answer, {label}", p95, "s", target="(issue 16: 2.6 s)")


if __name__ == "__main__":
    main()
