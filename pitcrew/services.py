"""The engine's collaborators, wired once per process from the runtime and the policy.

The engine only sees the ports (StateStore, AuditLog, Channel...); this is the one place that
chooses their Azure implementations.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pitcrew.runtime import Runtime, get_runtime

if TYPE_CHECKING:
    import httpx

    from pitcrew.audit import AuditLog
    from pitcrew.deadletter.service import DeadletterServices
    from pitcrew.notify.channels import Channel
    from pitcrew.notify.outbox import Outbox
    from pitcrew.notify.router import Router
    from pitcrew.policy import Policy
    from pitcrew.rotation.ports import RotationPorts
    from pitcrew.state import TableStateStore


@dataclass
class Services:
    policy: Policy
    state: TableStateStore
    audit: AuditLog
    outbox: Outbox
    channels: dict[str, Channel]
    router: Router
    runtime: Runtime | None = None
    rotation_ports: RotationPorts | None = None

    @property
    def rotation(self) -> RotationPorts:
        """Key Vault, the dual-key providers, Event Grid and ARM restarts, built on first use."""
        if self.rotation_ports is None:
            from pitcrew.rotation.wiring import build_ports

            self.rotation_ports = build_ports(self.runtime or get_runtime())
        return self.rotation_ports

    @property
    def deadletter(self) -> DeadletterServices:
        """The dead-letter store, sources and senders, built on first use."""
        from pitcrew.deadletter.service import get_deadletter

        return get_deadletter(self)


_lock = threading.Lock()
_built: tuple[int, Policy, Services] | None = None


def _http_client(runtime: Runtime) -> httpx.Client:
    def build() -> httpx.Client:
        import httpx

        return httpx.Client(follow_redirects=False, timeout=10.0)

    return runtime.cached("http_client", build)


def get_services(runtime: Runtime | None = None) -> Services:
    """Services for the current policy; raises PolicyInvalid when pitcrew.yaml is invalid."""
    global _built
    runtime = runtime or get_runtime()
    policy = runtime.policy()
    with _lock:
        if _built is not None and _built[0] == id(runtime) and _built[1] is policy:
            return _built[2]
        from pitcrew.audit import TableAuditLog
        from pitcrew.notify.channels import build_channels
        from pitcrew.notify.outbox import Outbox
        from pitcrew.notify.router import Router
        from pitcrew.state import TableStateStore

        audit = TableAuditLog(runtime.table("audit"))
        outbox = Outbox(runtime.table("outbox"), policy.outbox, audit=audit)
        channels = build_channels(policy, _http_client(runtime))
        services = Services(
            policy=policy,
            state=TableStateStore(runtime.table("claims"), runtime.table("runs")),
            audit=audit,
            outbox=outbox,
            channels=channels,
            router=Router(policy, channels, outbox),
            runtime=runtime,
        )
        _built = (id(runtime), policy, services)
        return services


def reset_services() -> None:
    global _built
    with _lock:
        _built = None
