"""A tiny function app for the local host's tests: one function per behaviour under test.

Loaded by path (not as `function_app`) so it never shadows the real app. What the functions
receive is recorded in RECORDS and readable over HTTP at GET /api/records.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

_lock = threading.Lock()
RECORDS: dict[str, list[Any]] = {"events": [], "ticks": [], "queue": []}


def _record(kind: str, item: Any) -> None:
    with _lock:
        RECORDS[kind].append(item)


def _json(value: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value), status_code=status, mimetype="application/json")


@app.route(route="hello/{name}", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"name": req.route_params["name"], "greeting": req.params.get("greeting")})


@app.route(route="hello/new", methods=["GET"])
def hello_new(req: func.HttpRequest) -> func.HttpResponse:
    # A literal segment must win over hello/{name}, as in ASP.NET routing.
    return _json({"literal": True})


@app.route(route="public", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def public(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"method": req.method, "body": req.get_body().decode()}, status=201)


@app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret-internal-detail")


@app.route(route="whoami", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def whoami(req: func.HttpRequest) -> func.HttpResponse:
    return _json(
        {
            "principal": req.headers.get("x-ms-client-principal"),
            "principal_name": req.headers.get("X-MS-CLIENT-PRINCIPAL-NAME"),
        }
    )


@app.route(route="records", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def records(req: func.HttpRequest) -> func.HttpResponse:
    with _lock:
        return _json(RECORDS)


@app.route(route="alerts", methods=["POST"])
def alerts(req: func.HttpRequest) -> func.HttpResponse:
    alert = req.get_json()
    return _json({"alertId": alert["data"]["essentials"]["alertId"]}, status=202)


@app.event_grid_trigger(arg_name="event")
def on_event(event: Any) -> None:
    data = event.get_json()
    if isinstance(data, dict) and data.get("fail"):
        raise RuntimeError("asked to fail")
    _record(
        "events",
        {
            "class": type(event).__name__,
            "id": event.id,
            "type": getattr(event, "event_type", None) or getattr(event, "type", None),
            "subject": event.subject,
            "topic": getattr(event, "topic", None) or getattr(event, "source", None),
            "data": data,
        },
    )


@app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    _record("ticks", {"past_due": timer.past_due})


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    body = msg.get_body().decode()
    _record("queue", {"body": body, "dequeue_count": msg.dequeue_count})
    if body.startswith("fail"):
        raise RuntimeError(f"cannot process {body}")


@app.service_bus_queue_trigger(arg_name="msg", queue_name="orders", connection="ServiceBus")
def on_servicebus(msg: func.ServiceBusMessage) -> None:
    raise AssertionError("Service Bus triggers must never run locally")
