"""The composition root: settings and the policy in, every service out, typed by its port.

This is the one module that chooses implementations: Table storage for state, audit, outbox and
rejected events (pitcrew.azure.tables), webhooks for channels, Key Vault, ARM and Event Grid for
rotation, Storage and Service Bus for dead letters. Everything else sees the ports
(pitcrew/ports.py, pitcrew/rotation/ports.py, pitcrew/deadletter/ports.py). Services are built
once per process and policy; the rotation and dead-letter parts on first use, so an event that
needs neither never builds their SDK clients.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import httpx

from pitcrew.alerting.dispatch import Pipeline
from pitcrew.alerting.route import build_tree
from pitcrew.alerting.silence import Silences
from pitcrew.azure.alerting import QueueFlushQueue
from pitcrew.azure.arm import DataPlane, SiteRestarts, providers
from pitcrew.azure.blobs import BlobBodyStore
from pitcrew.azure.cosmos_backup import AzureCosmosBackups
from pitcrew.azure.deadletter import AzureBrokers
from pitcrew.azure.eventgrid import EventGridPublisher
from pitcrew.azure.keyvault import KeyVaultSecretStore
from pitcrew.azure.keyvault_certificates import KeyVaultCertificateStore, certificate_client_for
from pitcrew.azure.keyvault_keys import KeyVaultKeyStore, key_client_for
from pitcrew.azure.loganalytics import LogAnalyticsBackupJobs, logs_client
from pitcrew.azure.metrics import AzureMetrics, metrics_client
from pitcrew.azure.queues import REPLAY_JOBS_QUEUE, SCAN_JOBS_QUEUE, StorageJobQueue
from pitcrew.azure.quota import AzureQuotaSource
from pitcrew.azure.registry import AcrImageRegistry, registry_clients
from pitcrew.azure.storage_protection import AzureStorageProtection
from pitcrew.azure.tables.alerting import (
    TableAlertStore,
    TableNotificationLog,
    TableSilenceStore,
)
from pitcrew.azure.tables.audit import TableAuditLog
from pitcrew.azure.tables.deadletter import TableFailedMessageStore
from pitcrew.azure.tables.expiry import TableFindingStore
from pitcrew.azure.tables.outbox import TableOutboxStore
from pitcrew.azure.tables.quota import TableQuotaStore, TableRequestStore
from pitcrew.azure.tables.rejected import TableRejectedEventLog
from pitcrew.azure.tables.state import TableStateStore
from pitcrew.deadletter.ports import DeadletterServices
from pitcrew.housekeeping.ports import HousekeepingPorts
from pitcrew.housekeeping.recovery_ports import RecoveryServices
from pitcrew.notify.channels import build_channels
from pitcrew.notify.outbox import Outbox
from pitcrew.policy import Policy
from pitcrew.ports import AuditLog, Channel, Notifier, RejectedEventLog, StateStore
from pitcrew.quota.ports import QuotaServices
from pitcrew.rotation.ports import RotationPorts
from pitcrew.runtime import Runtime, get_runtime


@dataclass
class Services:
    """Everything the engine works with, for one policy."""

    policy: Policy
    runtime: Runtime
    state: StateStore
    audit: AuditLog
    outbox: Outbox
    channels: Mapping[str, Channel]
    router: Notifier
    rejected: RejectedEventLog
    alerting: Pipeline
    """The alerting pipeline; `router` is the same object, typed by its port."""

    @cached_property
    def rotation(self) -> RotationPorts:
        """Key Vault, the dual-key providers, Event Grid and ARM restarts."""
        return rotation_ports(self.runtime)

    @cached_property
    def quota(self) -> QuotaServices:
        """The Quota API, Azure Monitor metrics, quota states, samples and requests."""
        return quota_services(self)

    @cached_property
    def deadletter(self) -> DeadletterServices:
        """The failed-message store, sources, senders and job queues."""
        return deadletter_services(self)

    @cached_property
    def housekeeping(self) -> HousekeepingPorts:
        """The expiry sweep's Key Vault listings (secrets, keys, certificates) and findings."""
        return housekeeping_ports(self.runtime)

    @cached_property
    def recovery(self) -> RecoveryServices:
        """Backup checks, restore drills and the image purge (Cosmos DB, Storage, Log
        Analytics, Container Registry)."""
        return recovery_services(self)


def build_services(runtime: Runtime, policy: Policy) -> Services:
    audit = TableAuditLog(runtime.shared_table("audit"))
    outbox = Outbox(TableOutboxStore(runtime.shared_table("outbox")), policy.outbox, audit=audit)
    channels = build_channels(policy, _http_client(runtime))
    pipeline = alerting_pipeline(runtime, policy, audit, outbox, channels)
    return Services(
        policy=policy,
        runtime=runtime,
        state=TableStateStore(runtime.shared_table("claims"), runtime.table("runs")),
        audit=audit,
        outbox=outbox,
        channels=channels,
        router=pipeline,
        alerting=pipeline,
        rejected=TableRejectedEventLog(runtime.table("rejectedevents")),
    )


def alerting_pipeline(runtime: Runtime, policy: Policy, audit: AuditLog, outbox: Outbox,
                      receivers: Mapping[str, Channel]) -> Pipeline:
    """Labels -> routing tree -> groups (Tables) -> flush (a storage queue) -> the outbox."""
    return Pipeline(
        policy, build_tree(policy.route_tree()),
        alerts=TableAlertStore(runtime.shared_table("alertgroups"), runtime.table("alerts")),
        nflog=TableNotificationLog(runtime.table("nflog")),
        silences=Silences(TableSilenceStore(runtime.table("silences")), audit),
        outbox=outbox, receivers=receivers,
        queue=QueueFlushQueue(lambda: runtime.storage_service("queue")),
        audit=audit,
    )


def rotation_ports(runtime: Runtime) -> RotationPorts:
    verify = runtime.azure_client_kwargs().get("connection_verify", True)
    data_plane = DataPlane(runtime.local_azure_url(), verify)
    publisher = runtime.eventgrid_publisher()
    return RotationPorts(
        secrets=KeyVaultSecretStore(runtime.secret_client),
        providers=providers(runtime.arm_client, data_plane),
        events=EventGridPublisher(publisher) if publisher is not None else None,
        sites=SiteRestarts(runtime.arm_client),
    )


def housekeeping_ports(runtime: Runtime) -> HousekeepingPorts:
    return HousekeepingPorts(
        secrets=KeyVaultSecretStore(runtime.secret_client),
        keys=KeyVaultKeyStore(key_client_for(runtime)),
        certificates=KeyVaultCertificateStore(certificate_client_for(runtime)),
        findings=TableFindingStore(runtime.table("expiry")),
    )


def deadletter_services(services: Services) -> DeadletterServices:
    runtime = services.runtime
    container = f"{runtime.settings.table_prefix.lower()[:50]}-dlq-bodies"
    bodies = BlobBodyStore(runtime.storage_service("blob"), container)
    return DeadletterServices(
        policy=services.policy.deadletter,
        state=services.state,
        audit=services.audit,
        router=services.router,
        store=TableFailedMessageStore(runtime.table("dlqmessages"), runtime.table("dlqgroups"),
                                      bodies),
        brokers=AzureBrokers(runtime),
        replay_jobs=StorageJobQueue(lambda: runtime.storage_service("queue"), REPLAY_JOBS_QUEUE),
        scan_jobs=StorageJobQueue(lambda: runtime.storage_service("queue"), SCAN_JOBS_QUEUE),
    )


def recovery_services(services: Services) -> RecoveryServices:
    runtime = services.runtime
    return RecoveryServices(
        policy=services.policy.recovery,
        state=services.state,
        audit=services.audit,
        router=services.router,
        cosmos=AzureCosmosBackups(runtime.arm_client, lambda: metrics_client(runtime)),
        storage=AzureStorageProtection(runtime.arm_client),
        jobs=LogAnalyticsBackupJobs(lambda: logs_client(runtime)),
        registry=AcrImageRegistry(registry_clients(runtime)),
        plan_only=services.policy.mode == "plan",
    )


def quota_services(services: Services) -> QuotaServices:
    runtime = services.runtime
    return QuotaServices(
        policy=services.policy,
        source=AzureQuotaSource(runtime),
        metrics=AzureMetrics(runtime),
        store=TableQuotaStore(runtime.table("quotastates"), runtime.table("quotasamples")),
        requests=TableRequestStore(runtime.table("quotarequests")),
        state=services.state,
        audit=services.audit,
        notifier=services.router,
    )


def _http_client(runtime: Runtime) -> httpx.Client:
    return runtime.cached(
        "http_client", lambda: httpx.Client(follow_redirects=False, timeout=10.0)
    )


_lock = threading.Lock()
_built: tuple[int, Policy, Services] | None = None


def get_services(runtime: Runtime | None = None) -> Services:
    """Services for the current policy; raises PolicyInvalid when pitcrew.yaml is invalid."""
    global _built
    runtime = runtime or get_runtime()
    policy = runtime.policy()
    with _lock:
        if _built is not None and _built[0] == id(runtime) and _built[1] is policy:
            return _built[2]
        services = build_services(runtime, policy)
        _built = (id(runtime), policy, services)
        return services


def reset_services() -> None:
    global _built
    with _lock:
        _built = None
