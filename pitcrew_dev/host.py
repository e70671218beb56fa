"""The local Functions host: serves a v2 `func.FunctionApp` the way Core Tools would.

Core Tools cannot be installed offline, so `pitcrew dev` runs this instead. It reads the same
decorator metadata (`app.get_functions()`), and serves:

- HTTP triggers at `/<routePrefix>/<route>` with Functions key semantics;
- Event Grid triggers at `/runtime/webhooks/eventgrid?functionName=NAME` with both handshakes;
- timers on their NCRONTAB schedules and storage queue triggers polling Azurite, as
  background workers that live and die with the ASGI lifespan;
- `POST /admin/functions/<name>` to run a non-HTTP function now (as Core Tools does);
- `GET /` and `GET /admin/host/status` listing the functions (no key: names are not secret);
- `/_pitcrew/inbox`, where the demo policy's webhook channel delivers notifications.
Service Bus triggers are listed as not available locally and never called.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import importlib
import importlib.util
import ipaddress
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from pitcrew_dev import easyauth, eventgrid_webhook
from pitcrew_dev.catalog import (
    EVENT_GRID,
    HTTP,
    QUEUE,
    TIMER,
    FunctionSpec,
    index_functions,
)
from pitcrew_dev.eventgrid_webhook import WebhookInputError
from pitcrew_dev.hostconfig import HostConfig, HostConfigError
from pitcrew_dev.inbox import Inbox
from pitcrew_dev.invoke import FunctionFailed, invoke
from pitcrew_dev.queues import QueueBinding, QueueWorker
from pitcrew_dev.timers import Schedule, TimerWorker, timer_request

log = logging.getLogger("pitcrew_dev.host")

EVENTGRID_WEBHOOK = "/runtime/webhooks/eventgrid"
INBOX_PATH = "/_pitcrew/inbox"
_HOST_PATH_PREFIXES = ("/admin/", "/runtime/", "/_pitcrew/", "/.auth/")
_HOST_PATHS = ("/", "/console", "/console/")
# App Service Authentication sets these after signing a user in, and removes any a client sent.
_PRINCIPAL_HEADER_PREFIX = "x-ms-client-principal"
_MAX_INBOX_BODY = 256 * 1024
# After SIGTERM or Ctrl+C, requests still running get this long before they are cancelled.
SHUTDOWN_GRACE_SECONDS = 3


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def is_loopback_address(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`: an address only this machine can reach."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    return host == "testclient" or is_loopback_address(host)  # starlette's TestClient peer


class _DaemonThreads(concurrent.futures.ThreadPoolExecutor):
    """The event loop's default executor here: one daemon thread per call, never joined.

    Sync functions run in it (asyncio.to_thread). A standard pool's threads are joined when the
    loop closes and again at interpreter exit, so one stuck invocation (a slow Table query, a
    hung socket) would keep the host from ever exiting on SIGTERM or Ctrl+C. A development host
    may abandon an invocation on shutdown; the real host does the same after its timeout.
    (A ThreadPoolExecutor only because asyncio accepts nothing else as the default executor.)
    """

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the awaiting task, as a pool would
                future.set_exception(exc)

        threading.Thread(target=run, name="pitcrew-invocation", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None  # nothing to join: the threads are daemons


@dataclass
class LocalHost:
    """A function app ready to serve: an ASGI app plus its background workers.

    The workers (timers, queue pollers) start and stop with the ASGI lifespan, so running the
    object under uvicorn (lifespan "on") is all it takes.
    """

    function_app: Any
    functions: list[FunctionSpec]
    function_key: str
    allow_dev_principal: bool
    settings: Mapping[str, str]
    config: HostConfig
    inbox: Inbox
    timers: list[TimerWorker]
    queues: list[QueueWorker]
    asgi: Starlette = field(init=False, repr=False)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.asgi = Starlette(routes=self._routes(), lifespan=self._lifespan)
        self._api_app = request_response(self._api)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] == "http" and path not in _HOST_PATHS
                and not path.startswith(_HOST_PATH_PREFIXES)):
            await self._api_app(scope, receive, send)
        else:
            await self.asgi(scope, receive, send)

    # -- lookup ------------------------------------------------------------------------------

    def function(self, name: str) -> FunctionSpec | None:
        """The function called `name` (case-insensitive, as in the real host)."""
        wanted = name.lower()
        return next((f for f in self.functions if f.name.lower() == wanted), None)

    def status(self, base_url: str) -> dict[str, Any]:
        base = base_url.rstrip("/")
        functions = []
        for spec in self.functions:
            entry = spec.describe()
            if spec.trigger_type == HTTP and spec.route is not None:
                entry["url"] = f"{base}{self._api_path(spec.route.template)}"
            elif spec.trigger_type == EVENT_GRID:
                entry["url"] = f"{base}{EVENTGRID_WEBHOOK}?functionName={spec.name}"
            functions.append(entry)
        return {"state": "Running", "routePrefix": self.config.route_prefix, "functions": functions}

    def _api_path(self, template: str) -> str:
        prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
        return f"{prefix}/{template.strip('/')}"

    # -- lifespan: background workers ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        asyncio.get_running_loop().set_default_executor(_DaemonThreads())
        workers: list[Callable[[], Awaitable[None]]] = [t.run for t in self.timers]
        workers += [q.run for q in self.queues]
        for run in workers:
            self._spawn(run())
        try:
            yield
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        # Keep a reference: the event loop only holds weak ones, and a collected task vanishes.
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- routes -------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/", self._status, methods=["GET"]),
            Route("/admin/host/status", self._status, methods=["GET"]),
            Route("/admin/functions/{name}", self._admin_invoke, methods=["POST"]),
            Route(EVENTGRID_WEBHOOK, self._eventgrid, methods=["POST", "OPTIONS"]),
            Route(INBOX_PATH, self._inbox, methods=["GET", "POST", "DELETE"]),
            # App Service Authentication's browser sign-in, played locally (pitcrew_dev.easyauth)
            Route("/.auth/login/{provider}", self._easyauth(easyauth.login), methods=["GET"]),
            Route("/.auth/logout", self._easyauth(easyauth.logout), methods=["GET"]),
            Route("/.auth/me", self._easyauth(easyauth.me), methods=["GET"]),
            Route("/console", self._easyauth(easyauth.console), methods=["GET"]),
            Route("/console/", self._easyauth(easyauth.console), methods=["GET"]),
        ]

    def _easyauth(self, handler: Callable[[Request, bool], Response]
                  ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return handler(request, self.allow_dev_principal and _is_loopback(request))

        return endpoint

    def _key_ok(self, request: Request) -> bool:
        """Function key from `?code=` or `x-functions-key`, compared in constant time."""
        expected = self.function_key.encode()
        for supplied in (request.query_params.get("code"), request.headers.get("x-functions-key")):
            if supplied and hmac.compare_digest(supplied.encode(), expected):
                return True
        return False

    async def _status(self, request: Request) -> Response:
        return JSONResponse(self.status(str(request.base_url)))

    async def _inbox(self, request: Request) -> Response:
        # No key, but loopback only: the inbox is a development convenience, not an API.
        if not _is_loopback(request):
            return _error(403, "the inbox only accepts requests from loopback")
        if request.method == "GET":
            return JSONResponse({"notifications": self.inbox.items()})
        if request.method == "DELETE":
            self.inbox.clear()
            return Response(status_code=204)
        body = await request.body()
        if len(body) > _MAX_INBOX_BODY:
            return _error(413, f"notification larger than {_MAX_INBOX_BODY} bytes")
        try:
            notification = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f"notification body is not valid JSON: {exc}")
        if not isinstance(notification, dict):
            return _error(400, "notification must be a JSON object")
        count = self.inbox.add(notification)
        return JSONResponse({"stored": True, "count": count}, status_code=200)

    # -- HTTP triggers ------------------------------------------------------------------------

    def _match_http(self, path: str) -> list[tuple[FunctionSpec, dict[str, str]]]:
        prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
        if prefix:
            if path.lower() != prefix.lower() and not path.lower().startswith(prefix.lower() + "/"):
                return []
            path = path[len(prefix) :] or "/"
        matches = []
        for spec in self.functions:
            if spec.trigger_type != HTTP or spec.route is None:
                continue
            params = spec.route.match(path)
            if params is not None:
                matches.append((spec, params))
        # Literal segments beat parameters, as in ASP.NET routing ("items/new" over "items/{id}").
        matches.sort(key=lambda m: -(m[0].route.literal_segments if m[0].route else 0))
        return matches

    async def _api(self, request: Request) -> Response:
        matches = self._match_http(request.url.path)
        if not matches:
            return Response(status_code=404)
        method = request.method.upper()
        chosen = next(
            ((s, p) for s, p in matches if s.methods is None or method in s.methods), None
        )
        if chosen is None:
            allowed = sorted({m for s, _ in matches for m in (s.methods or ())})
            return Response(status_code=405, headers={"Allow": ", ".join(allowed)})
        spec, route_params = chosen
        if not spec.available:
            return _error(
                503, f"function {spec.name!r} is not available locally: {spec.unavailable_reason}"
            )
        if spec.auth_level != "anonymous" and not self._key_ok(request):
            return _error(
                401,
                "a function key is required: pass ?code=<key> or the "
                "x-functions-key header (the key is printed at start-up)",
            )
        http_request = await self._to_http_request(request, route_params)
        try:
            result = await invoke(spec, http_request)
        except FunctionFailed as failed:
            return _error(500, "Internal Server Error", invocationId=failed.invocation_id)
        try:
            return _to_response(result)
        except TypeError as exc:
            log.error("function %r returned an unsupported value: %s", spec.name, exc)
            return _error(500, "Internal Server Error")

    async def _to_http_request(self, request: Request, route_params: dict[str, str]) -> Any:
        import azure.functions as func

        # --allow-dev-principal trusts the header from this machine only: a peer elsewhere on
        # the network is treated as unauthenticated even if the host were reachable.
        trusted = self.allow_dev_principal and _is_loopback(request)
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            if name.startswith(_PRINCIPAL_HEADER_PREFIX) and not trusted:
                if self.allow_dev_principal:
                    log.warning(
                        "dropped %s header from non-loopback peer %s: the development "
                        "principal is honoured from loopback only",
                        name,
                        request.client.host if request.client else "unknown",
                    )
                else:
                    log.info(
                        "dropped client-sent %s header (start with --allow-dev-principal "
                        "to simulate App Service Authentication)",
                        name,
                    )
                continue
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        signed_in = easyauth.principal_header(request) if trusted else None
        if signed_in and _PRINCIPAL_HEADER_PREFIX not in headers:
            headers[_PRINCIPAL_HEADER_PREFIX] = signed_in  # the browser's development session
        return func.HttpRequest(
            method=request.method.upper(),
            url=str(request.url),
            headers=headers,
            params=dict(request.query_params),
            route_params=route_params,
            body=await request.body(),
        )

    # -- Event Grid webhook -------------------------------------------------------------------

    async def _eventgrid(self, request: Request) -> Response:
        if not self._key_ok(request):
            return _error(
                401,
                "the Event Grid webhook requires the key (?code= or "
                "x-functions-key), as the real host requires its system key",
            )
        name = request.query_params.get("functionName") or ""
        spec = self.function(name)
        if spec is None or spec.trigger_type != EVENT_GRID:
            available = [f.name for f in self.functions if f.trigger_type == EVENT_GRID]
            return _error(404, f"cannot find function: '{name}'", available=available)
        if request.method == "OPTIONS":
            return _abuse_protection(request)
        if not spec.available:
            return _error(
                503, f"function {spec.name!r} is not available locally: {spec.unavailable_reason}"
            )
        kind = (request.headers.get("aeg-event-type") or "").strip().lower()
        body = await request.body()
        try:
            if kind == "subscriptionvalidation":
                code = eventgrid_webhook.validation_code(body)
                return JSONResponse({"validationResponse": code})
            if kind == "notification":
                return await self._deliver(spec, request, body)
        except WebhookInputError as exc:
            return _error(400, str(exc))
        if kind == "unsubscribe":
            return Response(status_code=202)
        given = request.headers.get("aeg-event-type")
        problem = "is missing" if given is None else f"is {given!r}"
        return _error(
            400,
            f"aeg-event-type header {problem}; expected SubscriptionValidation, "
            "Notification or Unsubscribe",
        )

    async def _deliver(self, spec: FunctionSpec, request: Request, body: bytes) -> Response:
        events = eventgrid_webhook.notification_events(
            body, request.headers.get("content-type", "application/json")
        )
        # Convert the whole batch first: a malformed event is a 400 before anything runs.
        bindings = [eventgrid_webhook.to_binding(i, e) for i, e in enumerate(events)]
        failed = []
        for event, binding in zip(events, bindings, strict=True):
            try:
                await invoke(spec, binding)
            except FunctionFailed as exc:
                failed.append({"eventId": event.get("id"), "invocationId": exc.invocation_id})
        if failed:
            # Event Grid retries the whole delivery on any 5xx, as with the real host.
            return _error(500, "Internal Server Error", failed=failed)
        return Response(status_code=202)

    # -- admin invoke -------------------------------------------------------------------------

    async def _admin_invoke(self, request: Request) -> Response:
        if not self._key_ok(request):
            return _error(401, "the admin API requires the key (?code= or x-functions-key)")
        spec = self.function(request.path_params["name"])
        if spec is None:
            return _error(404, f"no function named {request.path_params['name']!r}")
        if spec.trigger_type == HTTP:
            return _error(
                400,
                f"{spec.name!r} is an HTTP function; call "
                f"{self._api_path(spec.route.template if spec.route else '')}",
            )
        if not spec.available:
            return _error(400, f"{spec.name!r} is not available locally: {spec.unavailable_reason}")
        try:
            value = _admin_input(spec, await request.body())
        except (WebhookInputError, ValueError) as exc:
            return _error(400, str(exc))

        async def run() -> None:
            with contextlib.suppress(FunctionFailed):  # logged by invoke
                await invoke(spec, value)

        self._spawn(run())
        return Response(status_code=202)


def _abuse_protection(request: Request) -> Response:
    """CloudEvents 1.0 webhook validation: echo the origin, allow any rate."""
    origin = request.headers.get("webhook-request-origin")
    if not origin:
        return _error(
            400,
            "OPTIONS needs a WebHook-Request-Origin header "
            "(CloudEvents abuse-protection handshake)",
        )
    return Response(
        status_code=200,
        headers={"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*", "Allow": "POST"},
    )


def _admin_input(spec: FunctionSpec, body: bytes) -> Any:
    """The trigger value for `POST /admin/functions/<name>` with body `{"input": "..."}`."""
    payload: Any = {}
    if body.strip():
        try:
            payload = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ValueError(f'body must be JSON like {{"input": "..."}}: {exc}') from exc
    if not isinstance(payload, dict):
        raise ValueError('body must be a JSON object like {"input": "..."}')
    raw = payload.get("input", "")
    text = raw if isinstance(raw, str) else json.dumps(raw)
    now = datetime.now(UTC)
    if spec.trigger_type == TIMER:
        return timer_request(past_due=False, last=None, next_run=now)
    if spec.trigger_type == QUEUE:
        from azure.functions.queue import QueueMessage

        return QueueMessage(
            id=str(uuid.uuid4()),
            body=text,
            dequeue_count=1,
            insertion_time=now,
            expiration_time=now + timedelta(days=7),
            time_next_visible=now,
            pop_receipt=None,
        )
    if spec.trigger_type == EVENT_GRID:
        events = eventgrid_webhook.notification_events(text.encode(), "application/json")
        if len(events) != 1:
            raise ValueError("input must hold exactly one event")
        return eventgrid_webhook.to_binding(0, events[0])
    raise ValueError(f"{spec.trigger_type} functions cannot be run from the admin API")


def _to_response(result: Any) -> Response:
    """Translate what an HTTP function returned into a starlette Response."""
    import azure.functions as func

    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items()}
        if not any(k.lower() == "content-type" for k in headers) and result.mimetype:
            charset = f"; charset={result.charset}" if result.charset else ""
            headers["Content-Type"] = f"{result.mimetype}{charset}"
        return Response(result.get_body(), status_code=result.status_code, headers=headers)
    if isinstance(result, str | bytes):
        return Response(result, media_type="text/plain; charset=utf-8")
    if result is None:
        return Response(status_code=204)
    raise TypeError(f"expected func.HttpResponse, str or bytes, got {type(result).__name__}")


# -- building -------------------------------------------------------------------------------------


def build_host(
    function_app: Any,
    *,
    function_key: str,
    allow_dev_principal: bool = False,
    settings: Mapping[str, str],
    host_config: HostConfig | None = None,
    inbox: Inbox | None = None,
) -> LocalHost:
    """Index `function_app` and prepare its routes and workers (nothing runs until lifespan).

    `settings` are the app settings bindings read (`%NAME%`, queue connections); pass
    `os.environ` to behave like the real host. Raises HostConfigError naming the function and
    setting when a schedule or queue name cannot be resolved.
    """
    if not function_key:
        raise ValueError("function_key must not be empty")
    # The app trusts X-MS-CLIENT-PRINCIPAL only when App Service Authentication is on; locally
    # this host plays that part (stripping or passing the header), so say it is on.
    os.environ["WEBSITE_AUTH_ENABLED"] = "True"
    config = host_config or HostConfig()
    functions = index_functions(function_app)
    timers = [
        TimerWorker(
            spec,
            Schedule.parse(
                str(spec.trigger.get("schedule") or ""), settings, function_name=spec.name
            ),
        )
        for spec in functions
        if spec.trigger_type == TIMER and spec.available
    ]
    queues = [
        QueueWorker(spec, QueueBinding.resolve(spec, settings), config.queues)
        for spec in functions
        if spec.trigger_type == QUEUE and spec.available
    ]
    return LocalHost(
        function_app=function_app,
        functions=functions,
        function_key=function_key,
        allow_dev_principal=allow_dev_principal,
        settings=settings,
        config=config,
        inbox=inbox or Inbox(),
        timers=timers,
        queues=queues,
    )


def load_function_app(module: str) -> Any:
    """Import `module` (or `module:attribute`) and return its `func.FunctionApp`."""
    module_name, _, attribute = module.partition(":")
    imported = importlib.import_module(module_name)
    if attribute:
        return getattr(imported, attribute)
    if hasattr(imported, "app") and hasattr(imported.app, "get_functions"):
        return imported.app
    candidates = [
        v
        for v in vars(imported).values()
        if hasattr(v, "get_functions") and not isinstance(v, type)
    ]
    if len(candidates) != 1:
        raise ValueError(
            f"module {module_name!r} has no single FunctionApp; name it '{module_name}:attribute'"
        )
    return candidates[0]


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind first, so a busy port is a clear error before Azurite or the app are started."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port}: {exc.strerror} "
            "(is another host running? choose --port)"
        ) from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


def check_dev_principal_binding(host: str, allow_dev_principal: bool) -> None:
    """--allow-dev-principal lets any caller claim any role: refuse it off loopback."""
    if allow_dev_principal and not is_loopback_address(host):
        raise ValueError(
            f"--allow-dev-principal needs a loopback address (127.0.0.1, ::1 or localhost), "
            f"not {host!r}: anyone who can reach the port could claim any role"
        )


def uvicorn_config(local_host: LocalHost) -> uvicorn.Config:
    # A bounded graceful shutdown: requests still running after SHUTDOWN_GRACE_SECONDS are
    # cancelled (their threads abandoned, see _DaemonThreads), so SIGTERM always ends the host.
    return uvicorn.Config(
        local_host,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )


@contextlib.contextmanager
def serving(
    local_host: LocalHost, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 15.0
) -> Iterator[str]:
    """Serve `local_host` over real HTTP in a background thread; yield its base URL.

    For tests and tools: port 0 picks a free ephemeral port. The lifespan (timers, queue
    pollers) runs as under `serve`; leaving the block stops the server and its workers.
    """
    sock = bind_listener(host, port)
    server = uvicorn.Server(uvicorn_config(local_host))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="pitcrew-local-host", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the local host did not start within {timeout}s")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


__all__ = [
    "HostConfig",
    "HostConfigError",
    "LocalHost",
    "bind_listener",
    "build_host",
    "check_dev_principal_binding",
    "is_loopback_address",
    "load_function_app",
    "serving",
    "uvicorn_config",
]
