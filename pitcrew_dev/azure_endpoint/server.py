"""Serving: TLS from a generated CA, one uvicorn server for ARM / data plane / inspection and one
per vault, all on one asyncio loop in a background thread.

`start_local_azure()` is for tests and `pitcrew dev`; `main()` runs the same thing as a process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pitcrew_dev.azure_endpoint.arm import ArmApp, bearer_token
from pitcrew_dev.azure_endpoint.config import VAULT_NAME, EndpointConfig
from pitcrew_dev.azure_endpoint.credential import EVENT_GRID
from pitcrew_dev.azure_endpoint.dataplane import DataPlaneApp
from pitcrew_dev.azure_endpoint.keyvault import vault_asgi
from pitcrew_dev.azure_endpoint.keyvault_certificates import certificate_routes
from pitcrew_dev.azure_endpoint.keyvault_keys import key_routes
from pitcrew_dev.azure_endpoint.quota import QuotaService
from pitcrew_dev.azure_endpoint.recovery import RecoveryApp
from pitcrew_dev.azure_endpoint.resources import canonical_id
from pitcrew_dev.azure_endpoint.state import StateStore, UnknownResourceKind, VaultRecord

log = logging.getLogger("pitcrew_dev.azure_endpoint")

HOST = "127.0.0.1"
DEFAULT_TOPIC = "pitcrew-events"
MAX_PUBLISHED_EVENTS = 10_000
STARTUP_TIMEOUT_SECONDS = 15.0
SHUTDOWN_GRACE_SECONDS = 0.5

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class TlsFiles:
    directory: Path
    ca_path: Path  # the generated CA alone: connection_verify=<this>
    ca_bundle_path: Path  # public roots + the CA: for REQUESTS_CA_BUNDLE / SSL_CERT_FILE
    server_pem: Path  # server key + chain, owner-only


def make_tls(directory: Path) -> TlsFiles:
    """A fresh CA and a server certificate for 127.0.0.1 / localhost / ::1."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="pitcrew local Azure endpoint")
    leaf = ca.issue_cert(HOST, "localhost", "::1")
    ca_path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server_pem = directory / "server.pem"
    server_pem.touch(mode=0o600)
    leaf.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    # A bundle that also trusts the public roots, so setting REQUESTS_CA_BUNDLE for the endpoint
    # does not break every other HTTPS call the process makes.
    bundle = directory / "ca-bundle.pem"
    roots = ""
    with contextlib.suppress(ImportError, OSError):
        import certifi

        roots = Path(certifi.where()).read_text(encoding="ascii")
    bundle.write_text(roots + "\n" + ca_path.read_text(encoding="ascii"), encoding="ascii")
    return TlsFiles(directory, ca_path, bundle, server_pem)


def _fingerprint(value: str) -> str:
    """Enough to tell keys apart in an inspection answer, useless to an attacker."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _logged(app: ASGIApp, label: str) -> ASGIApp:
    """Log method, path and status only: queries and bodies can carry credentials."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status: list[int] = []

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await app(scope, receive, capture)
        log.debug("%s %s %s -> %s", label, scope["method"], scope["path"], status[:1] or "-")

    return asgi


class EndpointRuntime:
    """Everything that lives on the endpoint's event loop."""

    def __init__(self, store: StateStore, config: EndpointConfig, tls: TlsFiles) -> None:
        self.store = store
        self.config = config
        self.tls = tls
        self.servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
        self.vault_urls: dict[str, str] = {}
        self.url = ""
        self._vault_lock = asyncio.Lock()
        # Events published to local Event Grid topics, newest last; in memory only, bounded.
        self.published: deque[dict[str, Any]] = deque(maxlen=MAX_PUBLISHED_EVENTS)
        self.recovery = RecoveryApp(config.recovery)
        self.quota = QuotaService(config.quotas, config.metrics)

    async def _serve(self, app: ASGIApp, sock: socket.socket) -> None:
        config = uvicorn.Config(
            app,
            ssl_certfile=str(self.tls.server_pem),
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        self.servers.append((server, task))
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if task.done():
                task.result()  # surfaces the startup error
                raise RuntimeError("local Azure endpoint server exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError("local Azure endpoint server did not start in time")
            await asyncio.sleep(0.01)

    async def start(self, port: int) -> None:
        sock = _bind(port)
        self.url = f"https://{HOST}:{sock.getsockname()[1]}"
        await self._serve(_logged(self.main_app(), "arm"), sock)
        with self.store.read() as data:
            vaults = {name: record.port for name, record in data.vaults.items()}
        for name, vault_port in vaults.items():
            await self.add_vault(name, vault_port)

    async def add_vault(self, name: str, port: int = 0) -> str:
        if not VAULT_NAME.match(name):
            raise ValueError(f"invalid vault name {name!r}: 3-24 letters, digits or hyphens")
        async with self._vault_lock:
            key = name.lower()
            if key in self.vault_urls:
                return self.vault_urls[key]
            try:
                sock = _bind(port)
            except OSError:
                # The port this vault had before a restart is taken: any port beats no vault.
                log.warning("port %s for vault %s is taken; using a free port", port, name)
                sock = _bind(0)
            actual = sock.getsockname()[1]
            with self.store.change() as data:
                data.vaults.setdefault(key, VaultRecord()).port = actual
            app = vault_asgi(self.store, name, self.config.tenant_id,
                             (key_routes, certificate_routes))
            await self._serve(_logged(app, f"kv:{key}"), sock)
            self.vault_urls[key] = f"https://{HOST}:{actual}"
            return self.vault_urls[key]

    async def stop(self) -> None:
        for server, _ in self.servers:
            server.should_exit = True
        tasks = [task for _, task in self.servers]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
        if pending:
            # Idle keep-alive TLS connections (a client's pool) wait for the peer's close_notify,
            # which a blocked client never sends; asyncio would wait 30 s. Responses in flight
            # had the grace period; drop the rest.
            for server, _ in self.servers:
                server.force_exit = True
            await asyncio.gather(*pending, return_exceptions=True)

    # --- the main app: ARM, data plane, inspection ---------------------------------------------

    def main_app(self) -> ASGIApp:
        arm = ArmApp(self.store, self.config)
        data_plane = DataPlaneApp(self.store)
        quota = self.quota
        routes = [
            Route("/subscriptions/{s}/providers/{p}/locations/{l}/providers/Microsoft.Quota/"
                  "{rest:path}", quota.handle, methods=["GET", "PUT", "PATCH"]),
            Route("/subscriptions/{s}/providers/Microsoft.Quota/operationsStatus/{op}",
                  quota.operation_status, methods=["GET"]),
            Route("/subscriptions/{rest:path}/providers/Microsoft.Insights/metrics",
                  self.recovery.metrics_or(quota.query_metrics), methods=["GET"]),
            Route("/_local/quotas", quota.inspect, methods=["GET", "POST"]),
            Route("/subscriptions/{rest:path}", self.recovery.wrap(arm.handle),
                  methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/loganalytics/v1/workspaces/{workspace}/query", self.recovery.logs_query,
                  methods=["POST"]),
            Route("/acr/{server}/{rest:path}", self.recovery.acr,
                  methods=["GET", "POST", "DELETE"]),
            Route("/cosmos/{account}/", data_plane.cosmos, methods=["GET", "HEAD"]),
            Route("/cosmos/{account}/{rest:path}", data_plane.cosmos, methods=["GET", "HEAD"]),
            Route("/storage/{account}/blob", data_plane.storage, methods=["GET", "HEAD"]),
            Route("/storage/{account}/blob/", data_plane.storage, methods=["GET", "HEAD"]),
            Route("/servicebus/{namespace}", data_plane.servicebus, methods=["GET"]),
            Route(
                "/servicebus/{namespace}/{rest:path}",
                data_plane.servicebus,
                methods=["GET", "POST"],
            ),
            Route("/eventhubs/{namespace}", data_plane.eventhubs, methods=["GET"]),
            Route(
                "/eventhubs/{namespace}/{rest:path}", data_plane.eventhubs, methods=["GET", "POST"]
            ),
            Route("/eventgrid/{topic}/api/events", self._publish, methods=["POST"]),
            Route("/_local/events", self._events, methods=["GET", "DELETE"]),
            Route("/_local/health", self._health, methods=["GET"]),
            Route("/_local/vaults", self._vaults, methods=["GET", "POST"]),
            Route("/_local/resources", self._resources, methods=["GET", "POST"]),
            Route("/_local/regenerations", self._regenerations, methods=["GET"]),
            Route("/_local/operations", self._operations, methods=["GET"]),
        ]
        # Starlette's redirect_slashes would bounce /cosmos/{a} to /cosmos/{a}/ - harmless.
        return Starlette(routes=routes)

    async def _publish(self, request: Request) -> Response:
        """An Event Grid custom topic, as EventGridPublisherClient posts to it: a JSON array of
        events (CloudEvents or Event Grid schema), authenticated with a bearer token (managed
        identity, issued for Event Grid's audience) or an access key (`aeg-sas-key`)."""
        token = bearer_token(request)
        refused: str | None = None
        if token is not None:
            refused = EVENT_GRID.refusal(token)
        elif not request.headers.get("aeg-sas-key"):
            refused = "bearer token or aeg-sas-key required"
        if refused is not None:
            return JSONResponse(
                {"error": {"code": EVENT_GRID.code, "message": refused}}, status_code=401
            )
        try:
            events = json.loads(await request.body())
        except ValueError:
            return JSONResponse(
                {"error": {"code": "BadRequest", "message": "body is not JSON"}}, status_code=400
            )
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return JSONResponse(
                {"error": {"code": "BadRequest", "message": "body must be an array of events"}},
                status_code=400,
            )
        topic = request.path_params["topic"]
        for event in events:
            self.published.append({"topic": topic, "event": event})
        return Response(status_code=200)

    async def _events(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.published.clear()
            return Response(status_code=204)
        topic = request.query_params.get("topic")
        return JSONResponse(
            [p["event"] for p in self.published if topic is None or p["topic"] == topic]
        )

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "url": self.url})

    async def _vaults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                body = json.loads(await request.body() or b"{}")
                url = await self.add_vault(str(body["name"]), int(body.get("port", 0)))
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"error": f"bad vault request: {exc}"}, status_code=400)
            return JSONResponse({"name": body["name"], "url": url}, status_code=201)
        return JSONResponse(dict(self.vault_urls))

    async def _resources(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                body = json.loads(await request.body() or b"{}")
                record = self.store.ensure_resource(
                    str(body["id"]), body.get("keys") or {}, body.get("rights"),
                    bool(body.get("sharedKeyAccess", True)),
                    lock=body.get("lock"), rbac_denied=bool(body.get("rbacDenied", False)),
                    local_auth=bool(body.get("localAuth", True)),
                    network_denied=bool(body.get("networkDenied", False)),
                )
            except (UnknownResourceKind, ValueError, KeyError, TypeError) as exc:
                # Key values come from the body; the messages above name key *names* only.
                return JSONResponse({"error": f"bad resource request: {exc}"}, status_code=400)
            return JSONResponse({"id": record.id, "kind": record.kind.value}, status_code=201)
        with self.store.read() as data:
            resources = [
                {
                    "id": r.id,
                    "kind": r.kind.value,
                    "keys": {name: _fingerprint(value) for name, value in r.keys.items()},
                    "regenerations": dict(r.regenerations),
                    "restarts": r.restarts,
                    "referenceRefreshes": r.reference_refreshes,
                    "rights": list(r.rights),
                }
                for r in data.resources.values()
            ]
        return JSONResponse(resources)

    async def _regenerations(self, request: Request) -> Response:
        with self.store.read() as data:
            counts = {r.id: dict(r.regenerations) for r in data.resources.values()}
        return JSONResponse(counts)

    async def _operations(self, request: Request) -> Response:
        with self.store.read() as data:
            operations = [op.model_dump() for op in data.operations]
        return JSONResponse(operations)


@dataclass
class LocalAzure:
    """A running local Azure endpoint. Stop it with `.stop()` or use it as a context manager."""

    url: str  # ARM base_url and data-plane root, e.g. https://127.0.0.1:51234
    ca_path: Path
    ca_bundle_path: Path
    tenant_id: str
    store: StateStore = field(repr=False)
    _runtime: EndpointRuntime = field(repr=False)
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _stop: asyncio.Event = field(repr=False)
    _tls_dir_owned: bool = field(repr=False, default=False)
    _stopped: bool = field(repr=False, default=False)

    # --- vaults ------------------------------------------------------------------------------

    def vault_url(self, name: str, port: int = 0) -> str:
        """The vault's URL, serving it first if it is new (each vault has its own port)."""
        future: Future[str] = asyncio.run_coroutine_threadsafe(
            self._runtime.add_vault(name, port), self._loop
        )
        return future.result(timeout=STARTUP_TIMEOUT_SECONDS)

    @property
    def vault_urls(self) -> dict[str, str]:
        return dict(self._runtime.vault_urls)

    # --- ARM resources -----------------------------------------------------------------------

    def add_resource(
        self,
        resource_id: str,
        keys: dict[str, str] | None = None,
        rights: list[str] | None = None,
        *,
        shared_key_access: bool = True,
        lock: str | None = None,
        rbac_denied: bool = False,
        local_auth: bool = True,
        network_denied: bool = False,
    ) -> None:
        """Seed a resource (random keys unless given; `rights` for Service Bus / Event Hubs rules,
        default Listen, Send, Manage; `shared_key_access=False` for a storage account that
        refuses SharedKey requests; `lock="ReadOnly"` or `rbac_denied=True` for ARM's refusals;
        `local_auth=False` (disableLocalAuth) or `network_denied=True` (a firewall that does
        not admit pitcrew) for the data plane's). An existing resource keeps its keys and
        rights; its lock and refusals are set as given."""
        self.store.ensure_resource(resource_id, keys, rights, shared_key_access, lock=lock,
                                   rbac_denied=rbac_denied, local_auth=local_auth,
                                   network_denied=network_denied)

    def keys(self, resource_id: str) -> dict[str, str]:
        """Current key values, for tests that must sign with them. Never log the result."""
        with self.store.read() as data:
            return dict(data.resources[canonical_id(resource_id)].keys)

    def vault_operations(self, vault: str) -> dict[str, dict[str, int]]:
        """Key rotations and certificate creations per name, to assert "exactly once"."""
        with self.store.read() as data:
            record = data.vaults.get(vault.lower())
            if record is None:
                return {"keys": {}, "certificates": {}}
            return {"keys": {k.name: k.rotations for k in record.keys.values()},
                    "certificates": {c.name: c.creations for c in record.certificates.values()}}

    def regenerations(self, resource_id: str) -> dict[str, int]:
        with self.store.read() as data:
            record = data.resources.get(canonical_id(resource_id))
            return dict(record.regenerations) if record else {}

    def restarts(self, resource_id: str) -> int:
        with self.store.read() as data:
            record = data.resources.get(canonical_id(resource_id))
            return record.restarts if record else 0

    def reference_refreshes(self, site_id: str) -> int:
        """How often the site was asked to re-read its Key Vault references."""
        with self.store.read() as data:
            record = data.resources.get(canonical_id(site_id))
            return record.reference_refreshes if record else 0

    @property
    def recovery(self) -> RecoveryApp:
        """Backup, restore and registry state (tests inspect scratch accounts and deletes)."""
        return self._runtime.recovery

    def operations(self) -> list[dict[str, Any]]:
        with self.store.read() as data:
            return [op.model_dump() for op in data.operations]

    # --- Event Grid topics -------------------------------------------------------------------

    def topic_endpoint(self, topic: str = DEFAULT_TOPIC) -> str:
        """The topic endpoint as Azure shows it (`https://<topic>.<region>.eventgrid.azure.net/
        api/events`): EventGridPublisherClient posts to exactly this URL."""
        return f"{self.url}/eventgrid/{topic}/api/events"

    def published_events(self, topic: str = DEFAULT_TOPIC) -> list[dict[str, Any]]:
        """Events published to `topic`, oldest first (no secret values ever belong in them)."""
        return [p["event"] for p in list(self._runtime.published) if p["topic"] == topic]

    # --- how to point real SDK clients here --------------------------------------------------

    def keyvault_client_kwargs(self) -> dict[str, Any]:
        """Extra SecretClient kwargs: trust the CA; 127.0.0.1 can't match *.vault.azure.net."""
        return {"connection_verify": str(self.ca_path), "verify_challenge_resource": False}

    def mgmt_client_kwargs(self) -> dict[str, Any]:
        """Extra kwargs for azure-mgmt-* clients (credential, subscription_id come first)."""
        return {"base_url": self.url, "connection_verify": str(self.ca_path)}

    def environment(self) -> dict[str, str]:
        """Environment for a child process (the local Functions host) that calls the endpoint."""
        return {
            "PITCREW_LOCAL_AZURE_URL": self.url,
            "PITCREW_LOCAL_AZURE_CA": str(self.ca_path),
            "PITCREW_LOCAL_AZURE_VAULTS": json.dumps(self.vault_urls),
            # requests (under azure-core) and httpx read these; the bundle keeps public roots.
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle_path),
            "SSL_CERT_FILE": str(self.ca_bundle_path),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ca_path": str(self.ca_path),
            "ca_bundle_path": str(self.ca_bundle_path),
            "tenant_id": self.tenant_id,
            "vaults": self.vault_urls,
            "state_path": str(self.store.path) if self.store.path else None,
        }

    # --- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=STARTUP_TIMEOUT_SECONDS)
        if self._tls_dir_owned:
            shutil.rmtree(self.ca_path.parent, ignore_errors=True)

    def __enter__(self) -> LocalAzure:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_local_azure(
    *,
    port: int = 0,
    state_path: str | Path | None = None,
    config: EndpointConfig | dict[str, Any] | str | Path | None = None,
    cert_dir: str | Path | None = None,
) -> LocalAzure:
    """Start the endpoint on 127.0.0.1 in a background thread and return once it answers.

    `port` 0 picks a free port. `state_path` keeps state in that SQLite file across restarts.
    `config` seeds vaults, resources and secrets (EndpointConfig, dict or JSON file path).
    `cert_dir` keeps the CA files there (default: a temporary directory removed on stop).
    """
    endpoint_config = EndpointConfig.load(config)
    store = StateStore(state_path)
    store.apply_config(endpoint_config)
    owned = cert_dir is None
    tls = make_tls(Path(cert_dir) if cert_dir else Path(tempfile.mkdtemp(prefix="pitcrew-azure-")))
    runtime = EndpointRuntime(store, endpoint_config, tls)

    ready: Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = Future()

    async def run() -> None:
        stop = asyncio.Event()
        try:
            await runtime.start(port)
        except BaseException as exc:
            await runtime.stop()
            ready.set_exception(exc)
            return
        ready.set_result((asyncio.get_running_loop(), stop))
        await stop.wait()
        await runtime.stop()

    thread = threading.Thread(target=asyncio.run, args=(run(),), name="local-azure", daemon=True)
    thread.start()
    try:
        loop, stop = ready.result(timeout=STARTUP_TIMEOUT_SECONDS)
    except BaseException:
        if owned:
            shutil.rmtree(tls.directory, ignore_errors=True)
        raise
    return LocalAzure(
        url=runtime.url,
        ca_path=tls.ca_path,
        ca_bundle_path=tls.ca_bundle_path,
        tenant_id=endpoint_config.tenant_id,
        store=store,
        _runtime=runtime,
        _loop=loop,
        _thread=thread,
        _stop=stop,
        _tls_dir_owned=owned,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the endpoint until SIGINT/SIGTERM; print one JSON line describing it on stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m pitcrew_dev.azure_endpoint",
        description="pitcrew's local Azure endpoint (Key Vault secrets, ARM keys, signatures).",
    )
    parser.add_argument("--port", type=int, default=0, help="main port (default: any free)")
    parser.add_argument("--state", type=Path, help="SQLite file that keeps state across restarts")
    parser.add_argument("--config", type=Path, help="JSON seed: vaults, resources, secrets")
    parser.add_argument("--cert-dir", type=Path, help="where to write ca.pem (default: temp dir)")
    parser.add_argument(
        "--info-file", type=Path, help="also write the JSON description to this file"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        endpoint = start_local_azure(
            port=args.port, state_path=args.state, config=args.config, cert_dir=args.cert_dir
        )
    except (ValueError, OSError) as exc:
        print(f"local Azure endpoint failed to start: {exc}", file=sys.stderr)
        return 2
    with endpoint:
        description = json.dumps(endpoint.describe())
        if args.info_file:
            args.info_file.parent.mkdir(parents=True, exist_ok=True)
            args.info_file.write_text(description + "\n", encoding="utf-8")
        print(description, flush=True)
        log.info("local Azure endpoint at %s (CA %s)", endpoint.url, endpoint.ca_path)
        while not stop.wait(0.5):
            pass
    return 0
