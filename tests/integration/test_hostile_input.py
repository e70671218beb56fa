"""Every HTTP route of the real function app, on the local host, against hostile input.

The routes are enumerated from the app itself, so a route added later is covered without
editing this file. Each answer must come back (the client's timeout is a hang guard, not a
performance assertion) and be below 500: bad input is the caller's problem, and a 5xx would
send Event Grid, Azure Monitor or an operator's script into retries for something that can
never succeed.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import function_app
from pitcrew.auth import encode_principal
from pitcrew_dev.host import build_host, serving

KEY = "test-function-key"
ALL_ROLES = ["Reader", "Operator", "Rotator"]
HANG_GUARD_SECONDS = 20.0

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 5_000 + b"1" + b"}" * 5_000
# base64url of 3,000 "[": a notification reference or a continuation token that decodes to
# JSON deeper than Python's parser can recurse.
DEEP_BASE64 = base64.urlsafe_b64encode(b"[" * 3000).decode()
HOSTILE_IDS = ["\u202eevil", "\U0001f525", "a\x00b", "../../etc", "x" * 2000, "%00", "'or''='",
               DEEP_BASE64]
HOSTILE_BODIES = [
    DEEP_JSON,
    DEEP_OBJECT,
    b"",
    b"\xff\xfe\x00",
    b"null",
    b"[]",
    b"{}",
    b'{"id": "\\u202eevil", "messages": ["\\u0000"], "target": "servicebus:127.0.0.1/q"}',
    b'{"messages": [' + b",".join(b'"m%d"' % i for i in range(10_000)) + b"]}",
    b'"' + b"\\u0000" * 1000 + b'"',
    # Well-shaped bodies with values int(), Table keys or DNS cannot take:
    b'{"dry_run": ' + b"1" * 5000 + b"}",
    b'{"rate": NaN, "rtoMinutes": Infinity}',
    b'{"group": "../../etc/passwd", "dryRun": true}',
    b'{"group": "\\ud800", "dryRun": true}',
    b'{"group": "<script>", "messages": ["x"], "dryRun": true}',
    b'{"vault": "-0", "secret": "s", "dry_run": true}',
    b'{"vault": "nosuchvault-fz1", "secret": "s/../x", "dry_run": true}',
    # A Key Vault event, well-formed but for an id longer than a Table property holds:
    b'[{"id": "' + b"x" * 100_000 + b'", "eventType": "Microsoft.KeyVault.SecretNearExpiry", '
    b'"subject": "s", "eventTime": "2026-11-21T01:08:33Z", "dataVersion": "1", '
    b'"topic": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1", '
    b'"data": {"Id": "https://kv1.vault.azure.net/secrets/s/0123456789abcdef0123456789abcdef", '
    b'"VaultName": "kv1", "ObjectType": "Secret", "ObjectName": "s", '
    b'"Version": "0123456789abcdef0123456789abcdef", "NBF": null, "EXP": 1893456000}}]',
]


def _alert_bodies() -> list[bytes]:
    """Common Alert Schema alerts Azure Monitor would never send, each still well-formed JSON."""
    import json
    import uuid

    from tests.conftest import SAMPLES

    def sample(name: str) -> dict[str, Any]:
        raw = json.loads((SAMPLES / name).read_bytes())
        raw["data"]["essentials"]["alertId"] += uuid.uuid4().hex  # a new alert each run
        return raw

    bodies = []
    wide = sample("common-alert-metric.json")  # 32 custom properties of 1,024 characters
    wide["data"]["customProperties"] = {f"k{i}": "\u00e9" * 1024 for i in range(40)}
    bodies.append(wide)
    for value in (True, 5, "x"):
        odd = sample("common-alert-log-quota.json")
        odd["data"]["alertContext"]["condition"]["allOf"] = value
        bodies.append(odd)
        odd = sample("common-alert-log-quota.json")
        odd["data"]["essentials"]["configurationItems"] = value
        bodies.append(odd)
    for name in ("x" * 100_000, list(range(10_000))):
        odd = sample("common-alert-log-quota.json")
        for dim in odd["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"]:
            if dim["name"].lower() == "quotaname":
                dim["value"] = name
        bodies.append(odd)
    for when in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"):
        odd = sample("common-alert-metric.json")  # past what Table storage (or UTC) can hold
        odd["data"]["essentials"]["monitorCondition"] = "Resolved"
        odd["data"]["essentials"]["resolvedDateTime"] = when
        bodies.append(odd)
        odd = sample("common-alert-metric.json")
        odd["data"]["essentials"]["firedDateTime"] = when
        bodies.append(odd)
    status = sample("common-alert-log-quota.json")  # a JSON string nested past the stack
    status["data"]["alertContext"]["properties"] = {"statusMessage": "[" * 5000}
    status["data"]["essentials"]["monitoringService"] = "Activity Log - Administrative"
    bodies.append(status)
    return [json.dumps(b).encode() for b in bodies]


HOSTILE_BODIES += _alert_bodies()
HOSTILE_QUERIES = [
    {"since": "0001-01-01T00:00:00", "until": "9999-12-31T23:59:59"},
    {"limit": "100000000"},
    {"limit": "-1"},
    {"continuation": "not-a-token"},
    {"continuation": "eyJQYXJ0aXRpb25LZXkiOiAxfQ"},
    {"since": "\u202e", "until": "tomorrow"},
    {"status": "\x00"},
    {"limit": "\u00b2"},  # a digit to str.isdigit(), not to int()
    {"limit": "9" * 5000},  # past int()'s 4,300 digits
    {"continuation": base64.urlsafe_b64encode(b"[" * 1500).decode()},
]


def _http_routes() -> list[tuple[str, list[str]]]:
    from pitcrew_dev.catalog import HTTP, index_functions

    routes: list[tuple[str, list[str]]] = []
    for spec in index_functions(function_app.app):
        if spec.trigger_type != HTTP:
            continue
        methods = [str(m).upper() for m in (spec.trigger.get("methods") or ["GET"])]
        routes.append((str(spec.trigger.get("route") or spec.name), methods))
    return routes


def _fill(route: str, value: str) -> str:
    """The route with every `{param}` replaced by `value`, percent-encoded as a client would."""
    from urllib.parse import quote

    return re.sub(r"\{[^}]+\}", lambda _m: quote(value, safe=""), route)


@pytest.fixture
def base_url(pitcrew_env: Path) -> Iterator[str]:
    host = build_host(
        function_app.app, function_key=KEY, allow_dev_principal=True, settings=os.environ
    )
    with serving(host) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    headers = {
        "X-MS-CLIENT-PRINCIPAL": encode_principal("mallory", ALL_ROLES),
        "x-functions-key": KEY,
    }
    with httpx.Client(base_url=base_url, headers=headers, timeout=HANG_GUARD_SECONDS) as c:
        yield c


def _check(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"


def test_the_app_has_http_routes() -> None:
    assert len(_http_routes()) >= 10


def test_hostile_bodies_never_5xx(client: httpx.Client) -> None:
    for route, methods in _http_routes():
        for method in methods:
            if method not in ("POST", "PUT", "PATCH"):
                continue
            path = "/api/" + _fill(route, "nope")
            for body in HOSTILE_BODIES:
                response = client.request(
                    method, path, content=body, headers={"Content-Type": "application/json"}
                )
                _check(response, f"{method} {path} body {body[:40]!r}")


def test_hostile_ids_in_paths_never_5xx(client: httpx.Client) -> None:
    for route, methods in _http_routes():
        if "{" not in route:
            continue
        for method in methods:
            for value in HOSTILE_IDS:
                path = "/api/" + _fill(route, value)
                response = client.request(method, path, content=b"{}")
                _check(response, f"{method} {route} id {value[:20]!r}")


def test_hostile_queries_never_5xx(client: httpx.Client) -> None:
    for route, methods in _http_routes():
        if "GET" not in methods:
            continue
        path = "/api/" + _fill(route, "nope")
        for query in HOSTILE_QUERIES:
            response = client.get(path, params=query)
            _check(response, f"GET {path} {query}")


def test_huge_audit_range_is_refused_fast(client: httpx.Client) -> None:
    response = client.get(
        "/api/audit", params={"since": "0001-01-01T00:00:00", "until": "9999-12-31T23:59:59"}
    )
    assert response.status_code == 400, response.text
