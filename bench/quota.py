"""Quota scan throughput: 5,000 quotas across scopes, read through azure-mgmt-quota from the
local Azure endpoint, stored in Azurite, forecast and evaluated.

Each scan reads every scope (usages.list + quota.list), folds one sample into each quota's
state (the forecast window), writes states and samples in transactions of 100 per scope and
prunes old samples. Figures: quotas/s per scan, Table storage round trips per quota (counted
with an azure-core request hook), and peak Python memory (tracemalloc). The first scan creates
every state; later scans read and rewrite them with a growing forecast window. Runs on its own
fresh in-memory Azurite (bench/common.py). Prints figures; asserts nothing.

    .venv/bin/python bench/quota.py [--quotas 5000] [--scopes 50] [--scans 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import emit, fresh_azurite


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quotas", type=int, default=5000)
    parser.add_argument("--scopes", type=int, default=50)
    parser.add_argument("--scans", type=int, default=3)
    args = parser.parse_args()

    with fresh_azurite() as azurite:
        bench(args, azurite)


def bench(args: argparse.Namespace, azurite: Any) -> None:
    from pitcrew_dev.azure_endpoint import start_local_azure
    from tests.receiver import Receiver

    per_scope = max(1, args.quotas // args.scopes)
    subscriptions = [str(uuid.UUID(int=i + 1)) for i in range(args.scopes // 5 or 1)]
    locations = [f"region{i}" for i in range(max(1, args.scopes // len(subscriptions)))]
    scopes = [f"subscriptions/{s}/providers/Microsoft.Compute/locations/{loc}"
              for s in subscriptions for loc in locations]
    quotas = [{"scope": scope, "name": f"family{j}", "limit": 1000, "usage": j % 700,
               "growth_per_hour": (j % 7) * 10.0}
              for scope in scopes for j in range(per_scope)]
    receiver = Receiver()
    with start_local_azure(config={"quotas": quotas}) as endpoint, \
            tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "pitcrew.yaml"
        policy.write_text(
            "version: 1\nchannels:\n  hook:\n    type: webhook\n"
            f"    url: {receiver.url}\nroutes:\n  - name: all\n    channels: [hook]\n"
            "quota:\n"
            f"  subscriptions: [{', '.join(repr(s) for s in subscriptions)}]\n"
            "  providers: [Microsoft.Compute]\n"
            f"  locations: [{', '.join(locations)}]\n"
            "  forecast:\n    min_samples: 2\n")
        env = endpoint.environment()
        os.environ.update({
            "AzureWebJobsStorage": azurite.connection_string,
            "PITCREW_POLICY_PATH": str(policy),
            "PITCREW_TABLE_PREFIX": "bench" + uuid.uuid4().hex[:8],
            "PITCREW_LOCAL_AZURE_URL": env["PITCREW_LOCAL_AZURE_URL"],
            "PITCREW_LOCAL_AZURE_CA": env["PITCREW_LOCAL_AZURE_CA"],
        })
        from azure.data.tables import TableServiceClient

        from pitcrew.bootstrap import get_services
        from pitcrew.quota.scan import scan
        from pitcrew.runtime import get_runtime

        calls = {"tables": 0}

        def count(request: Any) -> None:
            calls["tables"] += 1

        runtime = get_runtime()
        runtime.cached("table_service", lambda: TableServiceClient.from_connection_string(
            azurite.connection_string, raw_request_hook=count))
        q = get_services().quota
        total = len(quotas)
        start_at = datetime.now(UTC)
        for i in range(args.scans):
            calls["tables"] = 0
            tracemalloc.start()
            began = time.perf_counter()
            report = scan(q, now=start_at + timedelta(hours=i))
            seconds = time.perf_counter() - began
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            which = "first scan (creates states)" if i == 0 else f"scan {i + 1}"
            note = f"{total} quotas in {len(scopes)} scopes"
            emit(f"quota: {which}", report.quotas / seconds, "quotas/s", None, "", note)
            emit(f"quota: {which}, table round trips per quota",
                 calls["tables"] / report.quotas, "trips", None, "",
                 f"above threshold {report.above}, notifications {len(report.notifications)}")
            emit(f"quota: {which}, peak Python memory", peak / 1e6, "MB", None, "", "tracemalloc")
    receiver.close()


if __name__ == "__main__":
    main()
