"""The local Functions host over real HTTP on loopback, with a small function app of its own.

One host serves the whole module (timers and queue pollers run in the background meanwhile);
queues get unique names because every test shares one Azurite.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from pitcrew_dev.azurite import Azurite
from pitcrew_dev.host import LocalHost, build_host, serving
from pitcrew_dev.hostconfig import HostConfig, HostConfigError
from pitcrew_dev.send import SendError, send_sample
from tests.conftest import SAMPLES

pytestmark = pytest.mark.azurite

HOSTAPP = Path(__file__).parent / "hostapp"

KEY = "local-test-key-" + uuid.uuid4().hex
WEBHOOK = "/runtime/webhooks/eventgrid"


def eventually(check: Callable[[], Any], *, timeout: float = 15.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; generous timeout, no timing assertions."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or check}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def hostapp() -> ModuleType:
    # Loaded by path under its own name, so it never shadows the real `function_app`.
    spec = importlib.util.spec_from_file_location("pitcrew_test_hostapp", HOSTAPP / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _settings(azurite: Azurite, queue: str) -> dict[str, str]:
    return {
        "TICK_SCHEDULE": "* * * * * *",
        "WORK_QUEUE": queue,
        "AzureWebJobsStorage": azurite.connection_string,
    }


@contextlib.contextmanager
def _running(
    hostapp: ModuleType, settings: dict[str, str], *, allow_dev_principal: bool = False
) -> Iterator[tuple[LocalHost, str]]:
    # build_host sets WEBSITE_AUTH_ENABLED; keep that from leaking into other test modules.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEBSITE_AUTH_ENABLED", os.environ.get("WEBSITE_AUTH_ENABLED", ""))
        local = build_host(
            hostapp.app,
            function_key=KEY,
            allow_dev_principal=allow_dev_principal,
            settings=settings,
            host_config=HostConfig.load(HOSTAPP / "host.json"),
        )
        with serving(local) as base_url:
            yield local, base_url


@pytest.fixture(scope="module")
def work_queue() -> str:
    return "t" + uuid.uuid4().hex[:16]


@pytest.fixture(scope="module")
def host(hostapp: ModuleType, azurite: Azurite, work_queue: str) -> Iterator[tuple[LocalHost, str]]:
    with _running(hostapp, _settings(azurite, work_queue)) as running:
        yield running


@pytest.fixture
def base(host: tuple[LocalHost, str]) -> str:
    return host[1]


@pytest.fixture
def client(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=10) as c:
        yield c


def records(client: httpx.Client) -> dict[str, list[Any]]:
    response = client.get("/api/records")
    assert response.status_code == 200
    return response.json()


def _queue_client(azurite: Azurite, name: str) -> Any:
    from azure.storage.queue import QueueClient

    return QueueClient.from_connection_string(azurite.connection_string, name)


def _enqueue(azurite: Azurite, queue: str, text: str) -> None:
    """Send as the SDKs and the Functions output binding do by default: base64 text."""
    from azure.core.exceptions import ResourceExistsError

    client = _queue_client(azurite, queue)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    client.send_message(base64.b64encode(text.encode()).decode())


def _eventgrid_headers(kind: str, content_type: str = "application/json") -> dict[str, str]:
    return {"aeg-event-type": kind, "content-type": content_type, "x-functions-key": KEY}


# -- HTTP triggers ------------------------------------------------------------------------------


def test_function_key_is_required_and_checked(client: httpx.Client) -> None:
    assert client.get("/api/hello/ada").status_code == 401
    assert client.get("/api/hello/ada", params={"code": "wrong"}).status_code == 401
    assert client.get("/api/hello/ada", headers={"x-functions-key": "wrong"}).status_code == 401

    by_query = client.get("/api/hello/ada", params={"code": KEY, "greeting": "hi"})
    assert by_query.status_code == 200
    assert by_query.json() == {"name": "ada", "greeting": "hi"}
    assert by_query.headers["content-type"].startswith("application/json")

    by_header = client.get("/api/hello/ada", headers={"x-functions-key": KEY})
    assert by_header.status_code == 200


def test_anonymous_route_needs_no_key_and_async_functions_run(client: httpx.Client) -> None:
    response = client.post("/api/public", content=b"payload")
    assert response.status_code == 201
    assert response.json() == {"method": "POST", "body": "payload"}


def test_method_not_allowed_is_405(client: httpx.Client) -> None:
    response = client.post("/api/hello/ada", params={"code": KEY})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_literal_route_beats_parameter_and_unknown_route_is_404(client: httpx.Client) -> None:
    assert client.get("/api/hello/new", params={"code": KEY}).json() == {"literal": True}
    assert client.get("/api/nowhere").status_code == 404
    assert client.get("/hello/ada", params={"code": KEY}).status_code == 404  # routePrefix


def test_function_exception_is_500_without_details(client: httpx.Client) -> None:
    response = client.get("/api/boom")
    assert response.status_code == 500
    assert response.json()["error"] == "Internal Server Error"
    assert "secret-internal-detail" not in response.text
    assert "Traceback" not in response.text


def test_client_principal_is_stripped_without_dev_flag(client: httpx.Client) -> None:
    response = client.get(
        "/api/whoami",
        headers={
            "X-MS-CLIENT-PRINCIPAL": base64.b64encode(b'{"claims":[]}').decode(),
            "X-MS-CLIENT-PRINCIPAL-NAME": "mallory",
        },
    )
    assert response.json() == {"principal": None, "principal_name": None}
    assert os.environ["WEBSITE_AUTH_ENABLED"] == "True"


def test_client_principal_passes_with_dev_flag(hostapp: ModuleType, azurite: Azurite) -> None:
    other_queue = "t" + uuid.uuid4().hex[:16]
    principal = base64.b64encode(b'{"claims":[]}').decode()
    with _running(hostapp, _settings(azurite, other_queue), allow_dev_principal=True) as (_, url):
        response = httpx.get(f"{url}/api/whoami", headers={"X-MS-CLIENT-PRINCIPAL": principal})
    assert response.json()["principal"] == principal


# -- Event Grid webhook ---------------------------------------------------------------------------


def test_subscription_validation_handshake(client: httpx.Client) -> None:
    body = (SAMPLES / "eventgrid-subscription-validation.json").read_bytes()
    url = f"{WEBHOOK}?functionName=on_event"
    response = client.post(url, content=body, headers=_eventgrid_headers("SubscriptionValidation"))
    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}

    no_key = {"aeg-event-type": "SubscriptionValidation"}
    assert client.post(url, content=body, headers=no_key).status_code == 401


def test_cloudevents_abuse_protection_handshake(client: httpx.Client) -> None:
    response = client.options(
        f"{WEBHOOK}?functionName=on_event&code={KEY}",
        headers={"WebHook-Request-Origin": "eventemitter.example.com"},
    )
    assert response.status_code == 200
    assert response.headers["webhook-allowed-origin"] == "eventemitter.example.com"
    assert response.headers["webhook-allowed-rate"] == "*"


def test_event_grid_schema_notification_reaches_function(client: httpx.Client) -> None:
    body = (SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_bytes()
    response = client.post(
        f"{WEBHOOK}?functionName=ON_EVENT", content=body, headers=_eventgrid_headers("Notification")
    )
    assert response.status_code == 202
    event = next(
        e for e in records(client)["events"] if e["id"] == "00eccf70-95a7-4e7c-8299-2eb17ee9ad64"
    )
    assert event["class"] == "EventGridEvent"
    assert event["type"] == "Microsoft.KeyVault.SecretNearExpiry"
    assert event["subject"] == "cosmos-primary-key"
    assert event["topic"].endswith("/vaults/sample-kv")
    assert event["data"]["VaultName"] == "sample-kv"


def test_cloudevent_notification_reaches_function(client: httpx.Client) -> None:
    body = (SAMPLES / "keyvault-secret-near-expiry.cloudevent.json").read_bytes()
    headers = _eventgrid_headers("Notification", "application/cloudevents+json")
    response = client.post(f"{WEBHOOK}?functionName=on_event", content=body, headers=headers)
    assert response.status_code == 202
    event = next(
        e for e in records(client)["events"] if e["id"] == "5a8a2c1e-7a55-4d7b-9c1e-2b2f0f3f6b11"
    )
    # The azure-functions converter turns a CloudEvent into func.CloudEvent, as in Azure.
    assert event["class"] == "CloudEvent"
    assert event["type"] == "Microsoft.KeyVault.SecretNearExpiry"
    assert event["topic"].endswith("/vaults/sample-kv")
    assert event["data"]["EXP"] == 1766280000


def test_cloudevents_batch_must_be_an_array(client: httpx.Client) -> None:
    body = (SAMPLES / "keyvault-secret-near-expiry.cloudevent.json").read_bytes()
    response = client.post(
        f"{WEBHOOK}?functionName=on_event",
        content=body,
        headers=(_eventgrid_headers("Notification", "application/cloudevents-batch+json")),
    )
    assert response.status_code == 400
    assert "array" in response.json()["error"]


def test_webhook_errors(client: httpx.Client) -> None:
    body = (SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_bytes()
    unknown = client.post(
        f"{WEBHOOK}?functionName=nope", content=body, headers=_eventgrid_headers("Notification")
    )
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["error"]

    url = f"{WEBHOOK}?functionName=on_event"
    missing = client.post(url, content=body, headers={"x-functions-key": KEY})
    assert missing.status_code == 400
    assert "aeg-event-type" in missing.json()["error"]
    wrong = client.post(url, content=body, headers=_eventgrid_headers("Bogus"))
    assert wrong.status_code == 400

    not_json = client.post(url, content=b"{not json", headers=_eventgrid_headers("Notification"))
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]
    no_type = json.dumps([{"id": "x", "eventTime": "2026-01-01T00:00:00Z", "subject": "s"}])
    missing_field = client.post(url, content=no_type, headers=_eventgrid_headers("Notification"))
    assert missing_field.status_code == 400
    assert "event[0].eventType" in missing_field.json()["error"]


def test_webhook_refuses_deep_nesting_with_a_400(client: httpx.Client) -> None:
    url = f"{WEBHOOK}?functionName=on_event"
    for kind in ("Notification", "SubscriptionValidation"):
        response = client.post(url, content=b"[" * 100_000, headers=_eventgrid_headers(kind))
        assert response.status_code == 400
        assert "deeper than 64" in response.json()["error"]


@pytest.mark.parametrize("time", [True, -1, 1.5, [1], {"a": {}}])
def test_webhook_refuses_a_time_that_is_not_text_with_a_400(client: httpx.Client, time: object
                                                            ) -> None:
    cloud_event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/s",
                   "type": "Custom.Thing", "time": time, "data": {}}
    headers = {**_eventgrid_headers("Notification"),
               "Content-Type": "application/cloudevents+json"}
    response = client.post(f"{WEBHOOK}?functionName=on_event", content=json.dumps(cloud_event),
                           headers=headers)
    assert response.status_code == 400, response.text
    assert "event[0].time is not a string" in response.json()["error"]


def test_failing_event_function_answers_500_so_event_grid_retries(client: httpx.Client) -> None:
    event = {
        "id": str(uuid.uuid4()),
        "eventType": "Custom.Thing",
        "subject": "s",
        "eventTime": "2026-01-01T00:00:00Z",
        "data": {"fail": True},
        "dataVersion": "1",
    }
    response = client.post(
        f"{WEBHOOK}?functionName=on_event",
        content=json.dumps([event]),
        headers=_eventgrid_headers("Notification"),
    )
    assert response.status_code == 500
    assert "asked to fail" not in response.text


# -- timers and the admin API ---------------------------------------------------------------------


def test_timer_fires_on_schedule_from_setting(client: httpx.Client) -> None:
    eventually(lambda: records(client)["ticks"], what="the every-second timer to fire")


def test_admin_runs_a_timer_now(client: httpx.Client) -> None:
    assert client.post("/admin/functions/tick", json={"input": ""}).status_code == 401
    before = len(records(client)["ticks"])
    response = client.post(
        "/admin/functions/tick", json={"input": ""}, headers={"x-functions-key": KEY}
    )
    assert response.status_code == 202
    eventually(lambda: len(records(client)["ticks"]) > before)
    assert client.post("/admin/functions/nope", json={}, params={"code": KEY}).status_code == 404
    assert client.post("/admin/functions/hello", json={}, params={"code": KEY}).status_code == 400


def test_admin_runs_queue_and_event_grid_functions(client: httpx.Client) -> None:
    text = f"admin-{uuid.uuid4().hex}"
    queued = client.post("/admin/functions/work", json={"input": text}, params={"code": KEY})
    assert queued.status_code == 202
    eventually(lambda: any(r["body"] == text for r in records(client)["queue"]))

    event_id = str(uuid.uuid4())
    event = {
        "id": event_id,
        "eventType": "Custom.Admin",
        "subject": "s",
        "eventTime": "2026-01-01T00:00:00Z",
        "data": {},
        "dataVersion": "1",
    }
    sent = client.post(
        "/admin/functions/on_event", json={"input": json.dumps(event)}, params={"code": KEY}
    )
    assert sent.status_code == 202
    eventually(lambda: any(e["id"] == event_id for e in records(client)["events"]))
    bad = client.post("/admin/functions/on_event", json={"input": "{"}, params={"code": KEY})
    assert bad.status_code == 400


def test_missing_schedule_setting_is_a_clear_error(hostapp: ModuleType) -> None:
    with pytest.raises(HostConfigError, match="TICK_SCHEDULE"):
        build_host(hostapp.app, function_key=KEY, settings={"WORK_QUEUE": "q-x1"})


# -- storage queues -------------------------------------------------------------------------------


def test_queue_message_is_processed_and_deleted(
    client: httpx.Client, azurite: Azurite, work_queue: str
) -> None:
    text = f"hello-{uuid.uuid4().hex}"
    _enqueue(azurite, work_queue, text)
    eventually(
        lambda: any(r["body"] == text for r in records(client)["queue"]),
        what="the queue function to receive the message",
    )
    queue = _queue_client(azurite, work_queue)
    eventually(
        lambda: queue.get_queue_properties().approximate_message_count == 0,
        what="the processed message to be deleted",
    )


def test_failing_queue_message_moves_to_poison(
    client: httpx.Client, azurite: Azurite, work_queue: str
) -> None:
    text = f"fail-{uuid.uuid4().hex}"
    _enqueue(azurite, work_queue, text)
    poison = _queue_client(azurite, f"{work_queue}-poison")

    def poisoned() -> list[Any]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return list(poison.peek_messages(max_messages=32))
        except ResourceNotFoundError:
            return []

    messages = eventually(poisoned, what="the message to land in the poison queue")
    assert [base64.b64decode(m.content).decode() for m in messages] == [text]
    attempts = [r["dequeue_count"] for r in records(client)["queue"] if r["body"] == text]
    assert attempts == [1, 2]  # host.json maxDequeueCount is 2


# -- status, inbox, send ------------------------------------------------------------------------


def test_status_lists_functions_and_service_bus_is_unavailable(client: httpx.Client) -> None:
    for path in ("/", "/admin/host/status"):
        status = client.get(path).json()
        by_name = {f["name"]: f for f in status["functions"]}
        assert by_name["on_servicebus"]["available"] is False
        assert by_name["hello"]["url"].endswith("/api/hello/{name}")
        assert by_name["on_event"]["url"].endswith(f"{WEBHOOK}?functionName=on_event")
        assert by_name["tick"]["schedule"] == "%TICK_SCHEDULE%"


def test_inbox_stores_and_lists_notifications(client: httpx.Client) -> None:
    note = {
        "title": "Secret expires soon",
        "severity": "warning",
        "summary": "rotate it",
        "facts": {"vault": "sample-kv"},
        "id": str(uuid.uuid4()),
    }
    assert client.post("/_pitcrew/inbox", json=note).status_code == 200
    listed = client.get("/_pitcrew/inbox").json()["notifications"]
    assert any(n["notification"]["id"] == note["id"] for n in listed)
    assert client.post("/_pitcrew/inbox", content=b"nope").status_code == 400


def test_send_sample_posts_like_event_grid(client: httpx.Client, base: str) -> None:
    validation = send_sample(
        SAMPLES / "eventgrid-subscription-validation.json",
        base_url=base,
        function="on_event",
        function_key=KEY,
    )
    assert validation.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}

    for sample in (
        "keyvault-secret-near-expiry.eventgrid.json",
        "keyvault-secret-near-expiry.cloudevent.json",
    ):
        response = send_sample(
            SAMPLES / sample, base_url=base, function="on_event", function_key=KEY
        )
        assert response.status_code == 202, response.text

    alert = send_sample(SAMPLES / "common-alert-metric.json", base_url=base, function_key=KEY)
    assert alert.status_code == 202
    assert alert.json()["alertId"].endswith("b9569717-bc32-442f-add5-83a997729330")


def test_send_sample_errors_name_the_problem(base: str, tmp_path: Path) -> None:
    sample = SAMPLES / "keyvault-secret-near-expiry.eventgrid.json"
    with pytest.raises(SendError, match="on_keyvault_event"):
        send_sample(sample, base_url=base, function_key=KEY)  # the test app has no such function
    with pytest.raises(SendError, match="no Event Grid function 'missing'"):
        send_sample(sample, base_url=base, function="missing", function_key=KEY)
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2]")
    with pytest.raises(SendError, match="neither"):
        send_sample(junk, base_url=base, function_key=KEY)


# -- serve(): the `pitcrew dev` entry point, in its own process ------------------------------------

_SERVE = """
import sys
from pathlib import Path
from pitcrew_dev.serve import serve

def ready(host, base_url):
    Path(sys.argv[1]).write_text(base_url)

serve("app", port=0, on_ready=ready)
"""


@pytest.mark.parametrize(
    ("stop_signal", "exit_code"),
    # SIGTERM (a service manager, `timeout`) must end as orderly as Ctrl+C: an exit through
    # serve()'s cleanup (which stops the Azurite it started), not death by the signal (-15).
    [(signal.SIGINT, 0), (signal.SIGTERM, 128 + signal.SIGTERM)],
)
def test_serve_loads_local_settings_and_announces(
    tmp_path: Path, azurite: Azurite, stop_signal: int, exit_code: int
) -> None:
    for name in ("app.py", "host.json"):
        (tmp_path / name).write_text((HOSTAPP / name).read_text())
    settings = {
        "TICK_SCHEDULE": "* * * * * *",
        "WORK_QUEUE": "t" + uuid.uuid4().hex[:16],
        "PITCREW_FUNCTION_KEY": "key-from-local-settings",
    }
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": settings}))
    ready_file = tmp_path / "ready"
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env.pop("AzureWebJobsStorage", None)  # serve() must find the running Azurite itself
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(ready_file)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = eventually(
            lambda: ready_file.exists() and ready_file.read_text(),
            timeout=30,
            what="serve() to call on_ready",
        )
        key = {"x-functions-key": "key-from-local-settings"}
        assert httpx.get(f"{base}/api/hello/ada", headers=key).status_code == 200
        assert httpx.get(f"{base}/api/hello/ada").status_code == 401
    finally:
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=20)
    text = output.decode(errors="replace")
    assert process.returncode == exit_code, text
    assert "key-from-local-settings" in text  # the banner prints the key
    assert "not available locally" in text  # the Service Bus trigger
    assert "/runtime/webhooks/eventgrid?functionName=on_event" in text.replace("\n", "")
