"""The notices pitcrew raises about its own work (rotation, dead-letter groups, stuck deliveries)
are built by one builder (pitcrew.notify.model.notice): their ids, dedup keys and labels, which
receivers, routes and silences depend on, stay what each area gave them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pitcrew.alerting.api import stuck_notification
from pitcrew.deadletter.model import Group
from pitcrew.deadletter.notices import group_notification
from pitcrew.deadletter.policy import DeadletterPolicy
from pitcrew.housekeeping.recovery_policy import DrillRule, RegistryRule
from pitcrew.notify.model import Notification, OutboxEntry
from pitcrew.rotation import messages
from pitcrew.rotation.policy import Consumer

NOW = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
RUN = {"vault": "kv1", "secret": "db-key", "strategy": "cosmos-keys", "trigger_version": "a" * 32,
       "new_version": "b" * 32, "regenerate": "secondary"}


def _shape(n: Notification) -> tuple[str, str, str, str, str, dict[str, str]]:
    return n.id, n.dedup_key, n.kind, n.severity, n.status, n.labels


def test_rotation_outcomes_share_the_secret_s_dedup_key_and_labels() -> None:
    vault_secret = {"vault": "kv1", "secret": "db-key"}
    assert _shape(messages.rotated("run1", RUN)) == (
        "rotation:run1:succeeded", "rotation:kv1/db-key", "rotation", "info", "resolved",
        {"kind": "rotation", "alertRule": "rotation-succeeded", "severity": "info",
         **vault_secret})
    failed = messages.failed("run1", {**RUN, "failed_step": "test"}, "boom.", None)
    assert _shape(failed) == (
        "rotation:run1:failed", "rotation:kv1/db-key", "rotation", "critical", "firing",
        {"kind": "rotation", "alertRule": "rotation-failed", "severity": "critical",
         **vault_secret})
    assert failed.correlation_id == "run1" and failed.facts["Reason"] == "boom."
    planned = messages.planned("run1", {**vault_secret, "version": "v", "steps": ["a", "b"]})
    assert _shape(planned) == (
        "rotation:run1:planned", "rotation:kv1/db-key", "rotation", "warning", "firing",
        {"kind": "rotation", "alertRule": "rotation-planned", "severity": "warning",
         **vault_secret})
    assert "It would: a; b." in planned.summary
    unavailable = messages.vault_unavailable("KV1", "db-key", "no role", "grant it",
                                             kind="forbidden", correlation_id="ev1")
    assert _shape(unavailable) == (
        "rotation:vault:kv1:forbidden:ev1", "rotation:vault:kv1", "rotation", "critical",
        "firing", {"kind": "rotation", "alertRule": "rotation-vault-unavailable",
                   "severity": "critical", "vault": "KV1", "secret": "db-key"})


def test_a_dead_letter_group_and_a_stuck_delivery_keep_their_labels() -> None:
    group = Group(id="g1", source="sb1", entity="orders", cause="timeout", reason="r",
                  description="d", count=12, first_seen=NOW, last_seen=NOW)
    notice = group_notification(group, 10, DeadletterPolicy())
    assert _shape(notice) == (
        "deadletter:g1:10", "deadletter:g1", "deadletter", "warning", "firing",
        {"kind": "deadletter", "alertRule": "deadletter-group", "severity": "warning",
         "entity": "orders", "source": "sb1", "deadletterGroup": "g1"})
    stuck = stuck_notification(OutboxEntry("teams", notice, "pending", 7, NOW, "etag",
                                           last_error="HTTP 500", created_at=NOW), NOW)
    assert stuck.dedup_key == "pitcrew:stuck:teams" and stuck.created_at == NOW
    assert (stuck.kind, stuck.severity, stuck.status, stuck.labels) == (
        "pitcrew", "critical", "firing",
        {"kind": "pitcrew", "alertRule": "pitcrew-notification-stuck", "severity": "critical",
         "receiver": "teams"})


@pytest.mark.parametrize(("model", "raw", "message"), [
    (RegistryRule, {"login_server": "acr.azurecr.io", "repositories": ["Bad Repo"]},
     "'Bad Repo' is not a repository name"),
    (RegistryRule, {"login_server": "acrprod.azurecr.io", "repositories": ["a" * 257]},
     "is not a repository name"),
    (RegistryRule, {"login_server": "acrprod.azurecr.io", "repositories": ["api"],
                    "in_use": ["api"]}, "'api': give repo:tag or repo@sha256:<digest>"),
    (DrillRule, {"name": "d", "account": "/subscriptions/x"},
     "'/subscriptions/x' is not a Cosmos DB account resource id"),
    (Consumer, {"site": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Web/nope/x"},
     "is not an App Service / Function App site id"),
])
def test_policy_fields_that_do_not_match_name_the_value(
    model: type, raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as bad:
        model(**raw)
    assert message in str(bad.value)
