"""Issue 16: the Storage round trips one event costs, counted on the wire (a transport under the
real SDK clients, against Azurite): nothing read that was just written, nothing scanned that
the guarantees do not need."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pitcrew.bootstrap import reset_services
from pitcrew.intake import api
from pitcrew.runtime import get_runtime, reset_runtime
from tests.conftest import SAMPLES


class Wire:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []

    def transport(self) -> Any:
        from azure.core.pipeline.transport import RequestsTransport

        wire = self

        class Counting(RequestsTransport):  # type: ignore[misc]
            def send(self, request: Any, **kwargs: Any) -> Any:
                with wire.lock:
                    wire.requests.append((request.method, unquote(request.url)))
                return super().send(request, **kwargs)

        return Counting()


def event_body() -> bytes:
    template = json.loads((SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_text())[0]
    version = uuid.uuid4().hex
    data = dict(template["data"], Version=version, ObjectName=f"s{version[:8]}")
    return json.dumps([dict(template, id=str(uuid.uuid4()), subject=f"s{version[:8]}",
                            data=data)]).encode()


def test_one_event_reads_silences_once_its_group_once_and_never_scans_alerts(
    pitcrew_env: Path,
) -> None:
    reset_runtime()
    reset_services()
    wire = Wire()
    get_runtime().storage_transport = wire.transport
    headers = {"content-type": "application/json"}
    assert api.receive_events("POST", headers, event_body()).status == 200  # tables created
    wire.requests.clear()
    result = api.receive_events("POST", headers, event_body())
    assert result.status == 200
    assert result.body["events"][0]["outcome"] == "handled"  # type: ignore[index]
    prefix = get_runtime().settings.table_prefix
    silences = [u for m, u in wire.requests if m == "GET" and f"/{prefix}silences" in u]
    groups = [u for m, u in wire.requests if m == "GET" and f"/{prefix}alertgroups(" in u]
    scans = [u for m, u in wire.requests if m == "GET" and f"/{prefix}alerts()" in u
             and "PartitionKey eq" not in u]
    group_writes = [u for m, u in wire.requests if m in ("POST", "PUT", "PATCH", "MERGE")
                    and f"/{prefix}alertgroups" in u]
    assert len(silences) == 1, silences  # one read for the send and its inline flush
    assert len(groups) <= 1, groups  # the group just saved is not read back
    assert scans == [], scans  # no inhibition rules: no scan of every firing alert
    # Created, then scheduled and leased for the inline flush in one write, then saved after it.
    assert len(group_writes) == 3, group_writes
