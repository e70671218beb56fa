"""The sweep's pure decisions: classes, the expiry policy's validation, key rotation policy
differences, stale versions, when a certificate's auto-renew is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from pitcrew.azure.keyvault_keys import days_duration, duration_days
from pitcrew.housekeeping.certificates import auto_renew_due, policy_problems
from pitcrew.housekeeping.expiry import classify
from pitcrew.housekeeping.hygiene import stale_versions, tag_problems
from pitcrew.housekeeping.keys import desired_policy, policy_differences
from pitcrew.housekeeping.policy import ExpiryPolicy, HygienePolicy, KeyRule
from pitcrew.housekeeping.ports import CertificatePolicyView, KeyRotationPolicy, ObjectProperties
from pitcrew.rotation.ports import SecretVersion

NOW = datetime(2026, 6, 1, tzinfo=UTC)
WINDOW = timedelta(days=30)


def props(**kw: object) -> ObjectProperties:
    base: dict[str, object] = {"kind": "secret", "vault": "kv", "name": "s", "enabled": True}
    return ObjectProperties(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("expires,enabled,expected", [
    (NOW - timedelta(seconds=1), True, "expired"),
    (NOW + timedelta(days=1), True, "expiring"),
    (NOW + timedelta(days=30), True, "expiring"),
    (NOW + timedelta(days=31), True, "ok"),
    (None, True, "no-expiry"),
    (NOW - timedelta(days=1), False, "disabled"),
])
def test_classes(expires: datetime | None, enabled: bool, expected: str) -> None:
    assert classify(props(expires_on=expires, enabled=enabled), now=NOW,
                    window=WINDOW) == expected


def test_no_expiry_is_ok_when_the_policy_does_not_require_one() -> None:
    assert classify(props(), now=NOW, window=WINDOW, require_expiry=False) == "ok"


@pytest.mark.parametrize("raw,problem", [
    ({"vaults": ["bad_name"]}, "Key Vault name"),
    ({"vaults": ["kv-a", "KV-A"]}, "twice"),
    ({"keys": [{"vault": "*", "key": "k", "expires_in_days": 20}]}, "28"),
    ({"keys": [{"vault": "*", "key": "k", "rotate_before_expiry_days": 88}]}, "7 days shorter"),
    ({"certificates": [{"vault": "*", "certificate": "c", "renew_at_percent": 80,
                        "renew_days_before_expiry": 30}]}, "not both"),
    ({"keys": [{"vault": "kv/x", "key": "k"}]}, "glob"),
    ({"hygiene": {"disable_old_versions": "yes"}}, "pattern"),
])
def test_the_expiry_policy_refuses_what_cannot_work(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ExpiryPolicy.model_validate(raw)
    assert problem in str(caught.value)


def test_key_policy_differences_name_each_field() -> None:
    wanted = desired_policy(KeyRule(vault="*", key="*"))
    assert policy_differences(wanted, wanted) == []
    assert policy_differences(None, wanted) == ["has no rotation policy"]
    current = KeyRotationPolicy(expires_in_days=None, notify_before_expiry_days=30,
                                rotate_after_create_days=60)
    found = policy_differences(current, wanted)
    assert "expiryTime is unset, pitcrew.yaml wants P90D" in found
    assert any("timeAfterCreate" in f for f in found)


@pytest.mark.parametrize("text,days", [("P90D", 90), ("P3M", 90), ("P1Y", 365), ("P2W", 14),
                                       ("p30d", 30), (None, None), ("PT1H", None)])
def test_durations(text: str | None, days: int | None) -> None:
    assert duration_days(text) == days
    assert days_duration(90) == "P90D"


def test_stale_versions_are_those_superseded_longer_than_the_retention() -> None:
    def v(name: str, days_ago: float, enabled: bool = True) -> SecretVersion:
        return SecretVersion(name="s", version=name, value=None, enabled=enabled,
                             created_on=NOW - timedelta(days=days_ago))

    versions = [v("a", 100), v("b", 60, enabled=False), v("c", 40), v("d", 5), v("e", 1)]
    stale = stale_versions(versions, now=NOW, retention=timedelta(days=30))
    # a (superseded 60 days ago), not b (disabled), not c (superseded 5 days ago), never e
    assert [s.version for s in stale] == ["a"]


def test_stale_versions_do_not_depend_on_the_listing_order_and_spare_the_newest_second(
) -> None:
    """Key Vault lists versions in no set order and dates them to the second: the current
    version, created in the same second as the one before it, is never taken for superseded."""
    import itertools

    old = NOW - timedelta(days=90)
    same_second = NOW - timedelta(days=60)

    def v(name: str, created: datetime) -> SecretVersion:
        return SecretVersion(name="s", version=name, value=None, enabled=True,
                             created_on=created)

    versions = [v("oldest", old), v("previous", same_second), v("current", same_second)]
    for order in itertools.permutations(versions):
        stale = stale_versions(list(order), now=NOW, retention=timedelta(days=30))
        assert [s.version for s in stale] == ["oldest"], [o.version for o in order]
        # Told which one Key Vault serves, the other of that second is superseded too.
        stale = stale_versions(list(order), now=NOW, retention=timedelta(days=30),
                               current="current")
        assert sorted(s.version for s in stale) == ["oldest", "previous"]


def test_tag_problems() -> None:
    policy = HygienePolicy()
    assert tag_problems(props(content_type="text/plain", tags={"owner": "x"}), policy) == []
    assert tag_problems(props(), policy) == ["no content type", "no owner tag"]


def test_auto_renew_due_and_policy_problems() -> None:
    created, expires = NOW - timedelta(days=80), NOW + timedelta(days=20)
    cert = props(kind="certificate", created_on=created, expires_on=expires)
    at_80 = CertificatePolicyView(issuer="Self", auto_renew_percent=80)
    assert auto_renew_due(at_80, cert) == created + timedelta(days=80)
    days = CertificatePolicyView(issuer="Self", auto_renew_days_before_expiry=30)
    assert auto_renew_due(days, cert) == expires - timedelta(days=30)
    email = CertificatePolicyView(issuer="Self", email_only=True)
    assert auto_renew_due(email, cert) is None
    assert policy_problems(email, None) == [
        "policy has no AutoRenew lifetime action (EmailContacts only)"]
    from pitcrew.housekeeping.policy import CertificateRule

    rule = CertificateRule(vault="*", certificate="*", renew_days_before_expiry=30)
    assert policy_problems(at_80, rule) == [
        "AutoRenew at 80% of lifetime, pitcrew.yaml wants 30 days before expiry"]


def test_a_sweep_answer_lists_a_bounded_number_of_findings_and_counts_them_all() -> None:
    from pitcrew.housekeeping.expiry import MAX_ATTENTION_LISTED, VaultSweep
    from pitcrew.housekeeping.ports import Finding

    swept = VaultSweep("kv")
    swept.findings = [Finding(vault="kv", kind="secret", name=f"s{i}", cls="expired",
                              expires=NOW - timedelta(days=1))
                      for i in range(MAX_ATTENTION_LISTED + 7)]
    answer = swept.to_dict()
    assert len(answer["attention"]) == MAX_ATTENTION_LISTED
    assert answer["attentionCount"] == MAX_ATTENTION_LISTED + 7
