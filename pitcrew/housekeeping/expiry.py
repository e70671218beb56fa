"""The expiry sweep: what Key Vault's events miss.

Every secret, key and certificate in the vaults `expiry.vaults` names is listed (properties
only: one listing call per kind and vault, never a value) and classified:

    expired     enabled, its expiry has passed
    expiring    enabled, expires within `expiry.window_days`
    no-expiry   enabled without an expiry (a policy violation when `require_expiry`)
    ok          expires later
    disabled    not enabled: nothing can read it

An expiring or expired object that a rule owns is acted on through the same path its event
takes, so an event and the sweep never act twice: a secret through the rotation engine, whose
run is keyed by (vault, secret, triggering version) — the event's version is the current one,
which is the version the sweep starts from; a key through the `key-rotation` claim; a
certificate through the `certificate-renewal` claim. The rest is reported: one notification per
vault and sweep, and GET /api/expiry.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pitcrew import state as state_module
from pitcrew.audit import AuditRecord, app_identity
from pitcrew.bootstrap import Services
from pitcrew.errors import InvalidInput, RetryLater
from pitcrew.housekeeping import certificates, hygiene, keys, messages
from pitcrew.housekeeping.policy import ExpiryPolicy
from pitcrew.housekeeping.ports import Finding, ObjectProperties
from pitcrew.links import docs_url
from pitcrew.rotation import tags as rotation_tags
from pitcrew.rotation.engine import RotationEngine, RotationStopped, describe_error
from pitcrew.rotation.ports import SecretVersion, VaultUnavailable

log = logging.getLogger(__name__)
CLASSES = ("expired", "expiring", "no-expiry", "ok", "disabled")
ACTIONABLE = ("expired", "expiring")
SWEEP_SCOPE = "expiry-sweep"
LIST_COMMAND = "pitcrew expiry --vault {vault} --class expiring"
PARALLEL_VAULTS = 4


def classify(props: ObjectProperties, *, now: datetime, window: timedelta,
             require_expiry: bool = True) -> str:
    if not props.enabled:
        return "disabled"
    if props.expires_on is None:
        return "no-expiry" if require_expiry else "ok"
    if props.expires_on <= now:
        return "expired"
    if props.expires_on <= now + window:
        return "expiring"
    return "ok"


MAX_ATTENTION_LISTED = 100  # findings a sweep's answer lists per vault (all are counted)


@dataclass
class VaultSweep:
    vault: str
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notified: str | None = None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for finding in self.findings:
            out[finding.cls] = out.get(finding.cls, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        # A vault may hold thousands of findings: the answer lists the first ones that need
        # attention and counts them all; GET /api/expiry?vault=&class= pages through every one.
        attention = [f for f in self.findings if messages.attention(f)]
        return {"vault": self.vault, "counts": self.counts(), "errors": self.errors,
                "notification": self.notified,
                "attention": [f.to_dict() for f in attention[:MAX_ATTENTION_LISTED]],
                "attentionCount": len(attention)}


@dataclass
class SweepReport:
    sweep_id: str
    plan: bool
    fix: bool
    vaults: list[VaultSweep] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sweep": self.sweep_id, "plan": self.plan, "fix": self.fix,
                "vaults": [v.to_dict() for v in self.vaults]}


class Sweeper:
    """One sweep. `plan` (dry-run or `mode: plan`) decides, reports and changes nothing; `fix`
    also applies pitcrew.yaml's key rotation policies and the hygiene disabling."""

    def __init__(self, services: Services, *, sweep_id: str | None = None, actor: str = "",
                 dry_run: bool = False, fix: bool = False,
                 now: Callable[[], datetime] | None = None) -> None:
        self.services = services
        self.policy: ExpiryPolicy = services.policy.expiry
        self.ports = services.housekeeping
        self.sweep_id = sweep_id or f"sweep-{uuid.uuid4().hex[:12]}"
        self.actor = actor or app_identity()
        self.plan = dry_run or services.policy.mode == "plan"
        # An operator's dry run answers with its report and tells no receiver; `mode: plan`
        # (the timer's sweeps) still notifies, saying nothing was changed.
        self.dry_run = dry_run
        self.fix = fix
        self._now = now or state_module.utcnow
        self.engine = RotationEngine(services)
        self._issuers: dict[str, str] = {}

    @property
    def correlation_id(self) -> str:
        return f"sweep:{self.sweep_id}"

    def run(self, vaults: Iterable[str] | None = None) -> SweepReport:
        """Sweep each vault; up to PARALLEL_VAULTS at once (the sweep waits on Key Vault)."""
        report = SweepReport(self.sweep_id, self.plan, self.fix)
        names = list(vaults if vaults is not None else self.policy.vaults)
        if len(names) <= 1:
            report.vaults = [self.sweep_vault(name) for name in names]
            return report
        with ThreadPoolExecutor(max_workers=min(PARALLEL_VAULTS, len(names)),
                                thread_name_prefix="expiry-sweep") as pool:
            report.vaults = list(pool.map(self.sweep_vault, names))
        return report

    # ------------------------------------------------------------------ one vault

    def sweep_vault(self, vault: str) -> VaultSweep:
        result = VaultSweep(vault)
        now = self._now()
        listed: list[str] = []
        for kind, listing, judge in (
                ("secrets", self.ports.secrets.list_properties, self._secret),
                ("keys", self.ports.keys.list_properties, self._key),
                ("certificates", self.ports.certificates.list_properties, self._certificate)):
            try:
                for props in _listed(listing, vault):
                    if props.managed:
                        continue  # a certificate's own key/secret: swept as the certificate
                    finding = self._finding(props, now)
                    try:
                        judge(props, finding, now)
                    except VaultUnavailable:
                        raise
                    except RetryLater as busy:
                        finding.action = f"in progress elsewhere ({busy})"
                    except Exception as exc:  # one object never stops the sweep of the rest
                        log.warning("expiry sweep %s: %s/%s %s: %s", self.sweep_id, vault,
                                    props.kind, props.name, describe_error(exc))
                        finding.action = f"failed: {describe_error(exc)}"
                    result.findings.append(finding)
                listed.append(kind.removesuffix("s"))
            except VaultUnavailable as unavailable:
                result.errors.append(f"{kind}: {unavailable}; {unavailable.action}")
        self.ports.findings.replace(vault, result.findings, sweep_id=self.sweep_id,
                                    listed=listed, started=now)
        result.notified = self._summarise(result)
        return result

    def _finding(self, props: ObjectProperties, now: datetime) -> Finding:
        window = timedelta(days=self.policy.window_days)
        return Finding(
            vault=props.vault, kind=props.kind, name=props.name,
            cls=classify(props, now=now, window=window,
                         require_expiry=self.policy.require_expiry),
            version=props.version, expires=props.expires_on, sweep_id=self.sweep_id,
            swept_at=now)

    def _summarise(self, result: VaultSweep) -> str | None:
        notification = messages.vault_summary(
            result.vault, self.sweep_id, result.findings, result.errors, plan=self.plan,
            list_command=LIST_COMMAND.format(vault=result.vault))
        details = {"counts": result.counts(), "errors": result.errors, "plan": self.plan,
                   "fix": self.fix}
        if notification is None or self.dry_run:
            self.services.audit.append(AuditRecord(
                actor=self.actor, action="expiry.sweep", target=result.vault,
                # A vault that could not be listed is neither swept nor planned.
                outcome="failed" if result.errors else "planned" if self.dry_run else "succeeded",
                correlation_id=self.correlation_id, details=details))
            return None
        return messages.tell(self.services, notification, action="expiry.sweep",
                             target=result.vault, correlation_id=self.correlation_id,
                             details=details, actor=self.actor)

    # ------------------------------------------------------------------ secrets

    def _secret(self, props: ObjectProperties, finding: Finding, now: datetime) -> None:
        if rotation_tags.is_pending(self.services.policy.rotation, props.name):
            finding.owner = "rotation:pending"
            return
        current = SecretVersion(name=props.name, version=props.version or "", value=None,
                                tags=props.tags, expires_on=props.expires_on,
                                created_on=props.created_on, enabled=props.enabled)
        try:
            target = rotation_tags.owner(self.services.policy.rotation,
                                         self.services.rotation.secrets, props.vault,
                                         props.name, current)
        except (InvalidInput, RotationStopped) as bad:
            target = None
            finding.problems.append(f"rotation tags: {bad}")
        if target is not None and target.strategy != "notify":
            finding.owner = f"rotation:{target.strategy}"
        finding.problems.extend(hygiene.tag_problems(props, self.policy.hygiene))
        if finding.cls in ACTIONABLE and finding.owner:
            finding.action = self._rotate_secret(props, target)
        elif finding.cls in ACTIONABLE:
            finding.action = "needs a person: no rotation rule owns it"
        elif finding.cls == "no-expiry":
            finding.action = "needs a person: set an expiry (policy: require_expiry)"
        if finding.owner or rotation_tags.ROTATED_AT in props.tags:
            problems, done = hygiene.disable_stale(
                self.services, self.services.rotation.secrets, props.vault, props.name,
                now=now, policy=self.policy.hygiene, apply=self._apply_hygiene(),
                actor=self.actor, correlation_id=self.correlation_id)
            finding.problems.extend(problems)
            if done:
                finding.action = "; ".join(a for a in (finding.action, done) if a)

    def _apply_hygiene(self) -> bool:
        return not self.plan and (self.fix or self.policy.hygiene.disable_old_versions == "act")

    def _rotate_secret(self, props: ObjectProperties, target: Any) -> str:
        if self.plan:
            plan = self.engine.plan(props.vault, props.name)
            return "plan: " + "; ".join(plan.get("steps", []))
        # The run id is (vault, secret, current version): the one a NearExpiry event about the
        # current version starts, so whichever comes second finds the first one's run.
        try:
            run = self.engine.start(props.vault, props.name, None, actor=self.actor,
                                    correlation_id=self.correlation_id,
                                    reason=f"expiry sweep {self.sweep_id}", target=target)
        except RetryLater as busy:
            return f"rotation in progress elsewhere ({busy})"
        outcome = run.data.get("outcome") or run.data.get("wait_reason") or "in progress"
        return f"rotation {run.status} at {run.step}: {outcome}"

    # ------------------------------------------------------------------ keys

    def _key(self, props: ObjectProperties, finding: Finding, now: datetime) -> None:
        rule = self.policy.key_rule(props.vault, props.name)
        if rule is None:
            if finding.cls in ACTIONABLE:
                finding.action = "needs a person: no key rule in expiry.keys"
            elif finding.cls == "no-expiry":
                finding.action = "needs a person: set an expiry or a rotation policy"
            return
        finding.owner = "keys:rotate" if rule.rotate else "keys"
        problems, done = keys.check_policy(
            self.services, self.ports.keys, props.vault, props.name, rule,
            apply=self.fix and not self.plan, actor=self.actor,
            correlation_id=self.correlation_id)
        finding.problems.extend(problems)
        actions = [done] if done else []
        if finding.cls in ACTIONABLE and rule.rotate:
            if self.plan:
                actions.append("plan: rotate with Key Vault's rotate operation")
            else:
                actions.append(keys.rotate_once(
                    self.services, self.ports.keys, props.vault, props.name, props.version,
                    rule, actor=self.actor, correlation_id=self.correlation_id,
                    reason=f"expiry sweep {self.sweep_id}"))
        elif finding.cls in ACTIONABLE:
            actions.append("needs a person: the key rule does not rotate it")
        finding.action = "; ".join(actions)

    # ------------------------------------------------------------------ certificates

    def _certificate(self, props: ObjectProperties, finding: Finding, now: datetime) -> None:
        store = self.ports.certificates
        rule = self.policy.certificate_rule(props.vault, props.name)
        view = store.policy(props.vault, props.name)
        kind = certificates.issuer_kind(store, self.policy, props.vault, view, self._issuers)
        finding.owner = f"certificates:{kind}" if rule else ""
        finding.problems.extend(certificates.policy_problems(view, rule))
        owner = certificates.owner_of(props, rule, self.policy.hygiene.owner_tag)
        if finding.cls not in ACTIONABLE:
            return
        if kind == "external":
            finding.action = (f"needs {owner or 'its owner'}: issuer {view.issuer} is outside "
                              "Key Vault; renew with the CA and merge "
                              f"({docs_url('runbooks/certificate-renewal.md')})")
            return
        due = certificates.auto_renew_due(view, props)
        if finding.cls == "expiring" and due is not None and \
                now < due + certificates.MISSED_AFTER:
            finding.action = f"auto-renew due {due:%Y-%m-%d %H:%M} UTC"
            return
        if rule is not None and not rule.renew:
            finding.action = f"needs {owner or 'its owner'}: auto-renew did not happen"
            return
        if self.plan:
            finding.action = "plan: renew with its own policy (begin_create_certificate)"
            return
        finding.action = certificates.renew_once(
            self.services, store, props.vault, props.name, props.version, actor=self.actor,
            correlation_id=self.correlation_id, reason=f"expiry sweep {self.sweep_id}",
            wait_seconds=self.policy.renewal_wait_seconds,
            poll_seconds=self.policy.renewal_poll_seconds)


def _listed(listing: Callable[[str], Iterator[ObjectProperties]],
            vault: str) -> Iterator[ObjectProperties]:
    yield from listing(vault)


def sweep_due(services: Services, *, now: datetime | None = None) -> SweepReport | None:
    """The timer (hourly): sweep once per `expiry.interval_hours`, whichever instance fires
    first. The interval's claim makes the others (and later ticks) a no-op; a sweep that
    crashes releases it, so the next tick sweeps again."""
    policy = services.policy.expiry
    if not policy.vaults:
        return None
    now = now or state_module.utcnow()
    interval = int(policy.interval_hours * 3600)
    bucket = int(now.timestamp()) // interval
    start = datetime.fromtimestamp(bucket * interval, tz=now.tzinfo)
    sweep_id = f"timer-{start:%Y%m%dT%H%M}"
    try:
        claim = services.state.claim(SWEEP_SCOPE, f"{interval}:{bucket}", lease_seconds=1800)
    except RetryLater:
        return None  # another instance is sweeping this interval
    if claim is None:
        return None
    try:
        report = Sweeper(services, sweep_id=sweep_id).run()
    except Exception as exc:
        services.state.release(claim, reason=type(exc).__name__)
        raise
    services.state.complete(claim, outcome=f"swept {len(report.vaults)} vault(s)")
    return report
