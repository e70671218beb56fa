"""Rotation units: the character policy, rule matching and policy validation, the CLI."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from pitcrew.rotation.engine import describe_error, fingerprint
from pitcrew.rotation.hooks import generate_password, meets
from pitcrew.rotation.policy import PasswordPolicy, RotationPolicy, SecretRule

COSMOS = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/"
          "acct")


@settings(max_examples=50, deadline=None)
@given(length=st.integers(12, 64), lower=st.integers(0, 3), upper=st.integers(0, 3),
       digits=st.integers(0, 3), symbols=st.integers(0, 3))
def test_generated_passwords_meet_the_policy(length: int, lower: int, upper: int, digits: int,
                                              symbols: int) -> None:
    policy = PasswordPolicy(length=length, lowercase=lower, uppercase=upper, digits=digits,
                            symbols=symbols)
    value = generate_password(policy)
    assert meets(policy, value)


def test_passwords_differ() -> None:
    policy = PasswordPolicy()
    assert len({generate_password(policy) for _ in range(100)}) == 100


def test_password_policy_rejects_impossible_counts() -> None:
    with pytest.raises(ValidationError, match="add up"):
        PasswordPolicy(length=12, lowercase=5, uppercase=5, digits=5)
    with pytest.raises(ValidationError, match="punctuation"):
        PasswordPolicy(symbol_set="ab")


def test_rules_match_globs_case_insensitively() -> None:
    policy = RotationPolicy(secrets=[
        SecretRule(vault="prod-*", secret="cosmos-*", strategy="cosmos-keys", resource=COSMOS),
        SecretRule(vault="*", secret="*", strategy="notify"),
    ])
    rule = policy.rule_for("PROD-kv", "Cosmos-Primary")
    assert rule is not None and rule.strategy == "cosmos-keys"
    other = policy.rule_for("dev-kv", "x")
    assert other is not None and other.strategy == "notify"


@pytest.mark.parametrize(("rule", "problem"), [
    ({"strategy": "cosmos-keys"}, "needs 'resource'"),
    ({"strategy": "storage-keys", "resource": COSMOS}, "not a valid id"),
    ({"strategy": "generated"}, "needs 'hook'"),
    ({"strategy": "cosmos-keys", "resource": COSMOS, "restart_sites": ["/nope"]}, "site id"),
])
def test_invalid_rules_name_the_problem(rule: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        SecretRule(vault="v", secret="s", **rule)


def test_errors_are_scrubbed_and_fingerprints_reveal_nothing() -> None:
    key = "c2VjcmV0LWtleS12YWx1ZQ=="
    text = describe_error(RuntimeError(f"bad key {key} here"), [key])
    assert key not in text and "[redacted]" in text
    assert key not in fingerprint(key) and len(fingerprint(key)) == 16


@pytest.mark.parametrize("start", [250, 261, 280, 294, 300])
def test_a_value_straddling_the_cut_is_redacted_whole(start: int) -> None:
    """The description is cut to 300 characters; the value is scrubbed before the cut, so no
    prefix of it survives (before: a value across character 300 kept its first part)."""
    value = "S3cr3t-Value-0123456789-abcdefghijKLMNOP"
    prefix = "login failed; connection string: Password="
    exc = RuntimeError("x" * (start - len(prefix)) + prefix + value + ";")
    text = describe_error(exc, [value])
    assert not [value[:n] for n in range(6, len(value) + 1) if value[:n] in text], text
    assert len(text) <= len("RuntimeError: ") + 300


def test_every_line_and_every_overlapping_value_is_scrubbed() -> None:
    """Values are scrubbed in the whole message (a value on a later line, or one that spans
    the first line break, never reaches the first line in part), longest first, so a value
    containing another is not left half-scrubbed."""
    short, long = "abcdef0123", "abcdef0123-XYZ-tail-987"
    text = describe_error(RuntimeError(f"bad {long} and {short}\nmore {short}"), [short, long])
    assert short not in text and "XYZ-tail" not in text, text
    split = "line-one-part\nline-two-part"
    text = describe_error(RuntimeError(f"oops {split} end"), [split])
    assert "line-one" not in text, text
    # Described twice (a description quoted in another failure): still nothing to find.
    again = describe_error(RuntimeError(describe_error(RuntimeError(long), [long])), [long])
    assert long not in again and "[redacted]" in again


class FakeClient:
    def __init__(self, body: Any) -> None:
        self.body = body
        self.calls: list[tuple[str, Any]] = []

    def post(self, path: str, *, json: Any = None, params: Any = None) -> Any:
        self.calls.append((path, json))
        return self.body

    def get(self, path: str, *, params: Any = None) -> Any:
        self.calls.append((path, params))
        return self.body


def test_cli_rotate_dry_run_prints_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.cli import client
    from pitcrew.cli import main as cli

    fake = FakeClient({"dryRun": True, "plan": {"version": "v1", "strategy": "cosmos-keys",
                                                "steps": ["regenerate the secondary key"]}})
    monkeypatch.setattr(client, "api_client", lambda: fake)
    result = CliRunner().invoke(cli.app, ["rotate", "sample-kv/cosmos-primary-key", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "regenerate the secondary key" in result.output
    assert "nothing was changed" in result.output
    assert fake.calls == [("/api/rotations", {"vault": "sample-kv",
                                              "secret": "cosmos-primary-key", "dry_run": True})]


def test_cli_rotate_reports_a_failed_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.cli import client
    from pitcrew.cli import main as cli

    run = {"id": "kv/s@v", "status": "failed", "step": "test", "outcome": "rejected"}
    monkeypatch.setattr(client, "api_client", lambda: FakeClient({"dryRun": False, "run": run}))
    result = CliRunner().invoke(cli.app, ["rotate", "kv/s"])
    assert result.exit_code == 1 and "failed" in result.output
    assert CliRunner().invoke(cli.app, ["rotate", "no-slash"]).exit_code == 2


VALID = """version: 1
channels:
  hook: {type: webhook, url: "https://example.com/hook"}
routes:
  - {name: all, channels: [hook]}
rotation:
"""


@pytest.mark.parametrize(("rotation", "problem"), [
    ("  hook_modules: [no_such_hooks_module]\n", "rotation.hook_modules[0]: cannot import"),
    ("  secrets:\n    - {vault: v, secret: s, strategy: generated, hook: not-registered}\n",
     "rotation.secrets[0].hook: no hook named 'not-registered'"),
])
def test_policy_validate_imports_hook_modules_and_checks_hook_names(
    tmp_path: Any, rotation: str, problem: str,
) -> None:
    from pitcrew.cli import main as cli

    path = tmp_path / "pitcrew.yaml"
    path.write_text(VALID + rotation)
    result = CliRunner().invoke(cli.app, ["policy", "validate", str(path)])
    assert result.exit_code == 1, result.output
    assert problem in result.output


def test_policy_validate_accepts_a_registered_hook(tmp_path: Any) -> None:
    from pitcrew.cli import main as cli

    (tmp_path / "my_pitcrew_hooks_ok.py").write_text(
        "from pitcrew.rotation.hooks import credential_hook\n"
        "@credential_hook('sql-login-ok')\n"
        "class H:\n"
        "    def apply(self, target, value): ...\n"
        "    def test(self, target, value): ...\n")
    path = tmp_path / "pitcrew.yaml"
    path.write_text(VALID + "  hook_modules: [my_pitcrew_hooks_ok]\n  secrets:\n    - {vault: v, "
                    "secret: s, strategy: generated, hook: sql-login-ok}\n")
    result = CliRunner().invoke(cli.app, ["policy", "validate", str(path)])
    assert result.exit_code == 0, result.output


def test_the_rotations_table_fits_80_columns() -> None:
    from rich.console import Console

    from pitcrew.cli.rotation import runs_table

    long = "a-very-long-secret-name-that-goes-on-and-on-" * 2
    runs = [
        {"vault": "production-westeurope-kv", "secret": long, "version": "f" * 32,
         "status": "waiting", "step": "prepare", "updatedAt": "2025-01-02T03:04:05+00:00",
         "notBefore": "2025-01-03T03:04:05+00:00",
         "waitReason": "the grace period (24 h) after the rotation at 2025-01-02T03:04:05 "
                       "runs until 2025-01-03T03:04:05"},
        {"vault": "kv", "secret": "s", "version": "v1", "status": "failed", "step": "test",
         "updatedAt": "2025-01-02T03:04:05+00:00", "outcome": "x" * 400},
    ]
    console = Console(width=80, record=True, force_terminal=False)
    console.print(runs_table(runs))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "until" in text and "grace" in text


def test_cli_rotate_force_needs_a_reason_and_says_until_when_a_run_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pitcrew.cli import client
    from pitcrew.cli import main as cli

    assert CliRunner().invoke(cli.app, ["rotate", "kv/s", "--force"]).exit_code == 2
    run = {"id": "kv/s@v", "status": "waiting", "step": "prepare", "outcome": None,
           "notBefore": "2025-01-03T03:04:05+00:00", "waitReason": "the grace period (24 h)"}
    fake = FakeClient({"dryRun": False, "run": run})
    monkeypatch.setattr(client, "api_client", lambda: fake)
    result = CliRunner().invoke(cli.app, ["rotate", "kv/s", "--force", "--reason", "leak",
                                          "--both"])
    assert result.exit_code == 0, result.output
    assert "waiting until 2025-01-03T03:04:05+00:00: the grace period (24 h)" in result.output
    assert fake.calls == [("/api/rotations", {"vault": "kv", "secret": "s", "dry_run": False,
                                              "force": True, "both": True, "reason": "leak"})]


def test_cli_rotations_follows_continuations_with_all(monkeypatch: pytest.MonkeyPatch) -> None:
    from pitcrew.cli import client
    from pitcrew.cli import main as cli

    pages = iter([{"rotations": [{"id": "a"}], "continuation": "t1"},
                  {"rotations": [{"id": "b"}], "continuation": None}])

    class Paged(FakeClient):
        def get(self, path: str, *, params: Any = None) -> Any:
            self.calls.append((path, params))
            return next(pages)

    fake = Paged(None)
    monkeypatch.setattr(client, "api_client", lambda: fake)
    result = CliRunner().invoke(cli.app, ["rotations", "--all", "--limit", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert [c[1].get("continuation") for c in fake.calls] == [None, "t1"]
    assert '"b"' in result.output


def test_a_vault_host_that_does_not_resolve_is_recognised_however_the_transport_says_it() -> None:
    import socket

    from azure.core.exceptions import ServiceRequestError

    from pitcrew.azure.keyvault import _unresolvable

    no_such_name = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    # azure-core's requests transport: raised outside the except, so no __cause__/__context__;
    # the transport's error rides as inner_exception.
    assert _unresolvable(ServiceRequestError("connection failed", error=no_such_name))
    bare = ServiceRequestError(
        "HTTPSConnection(host='ghost.vault.azure.net', port=443): Failed to resolve "
        "'ghost.vault.azure.net' ([Errno -2] Name or service not known)")
    assert _unresolvable(bare)
    # DNS itself failing is not "no such vault": that one is retried, not a 404.
    dns_down = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert not _unresolvable(ServiceRequestError("connection failed", error=dns_down))
    assert not _unresolvable(ServiceRequestError("Connection refused"))


@pytest.mark.parametrize(("done", "says", "never"), [
    ({}, "No consumer was told", "pitcrew.SecretRotated was published"),
    ({"published": True}, "pitcrew.SecretRotated was published", "No consumer"),
    ({"refreshed": ["/subscriptions/s/resourceGroups/r/providers/Microsoft.Web/sites/a"]},
     "references of 1 site(s) were refreshed", "SecretRotated was published"),
])
def test_the_rotated_notice_says_only_what_consumers_were_really_told(
    done: dict[str, Any], says: str, never: str,
) -> None:
    """Nothing is reported done that did not happen: without an event topic nothing is
    published, so the notice must not say consumers were told."""
    from pitcrew.rotation import messages

    data = {"vault": "kv", "secret": "s", "new_version": "v2", "trigger_version": "v1",
            "strategy": "cosmos-keys", **done}
    summary = messages.rotated("run-1", data).summary
    assert says in summary and never not in summary


SITE_A = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Web/sites/a"
SITE_B = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Web/sites/b"


def test_a_failure_before_promotion_says_the_current_version_was_not_changed() -> None:
    from pitcrew.rotation import messages

    data = {"vault": "kv", "secret": "s", "trigger_version": "v1", "strategy": "cosmos-keys",
            "failed_step": "test"}
    note = messages.failed("run-1", data, "the key was refused.", None)
    assert "v1 is still the one consumers use and was not changed" in note.summary
    assert [a.command for a in note.actions if a.command] == ["pitcrew rotate kv/s",
                                                              "pitcrew rotations"]


@pytest.mark.parametrize(("step", "done", "says", "never"), [
    ("refresh", {"published": True, "refreshed": [SITE_A], "consumers": [[SITE_A, False],
                                                                         [SITE_B, True]]},
     ["pitcrew.SecretRotated was published", f"references of site(s) {SITE_A} were refreshed",
      f"site(s) {SITE_B} were not refreshed", f"Site(s) {SITE_B} were not restarted"],
     ["No consumer"]),
    ("promote", {"consumers": [[SITE_A, False]]},
     ["No consumer was told", f"site(s) {SITE_A} were not refreshed"],
     ["was published", "were refreshed"]),
    ("first", {"both": True, "holds": "primary", "published": True, "refreshed": [SITE_A],
               "consumers": [[SITE_A, False]]},
     ["The primary key that version v1 holds was not regenerated"],
     ["were not refreshed"]),
])
def test_a_failure_after_promotion_says_what_was_promoted_and_who_was_told(
    step: str, done: dict[str, Any], says: list[str], never: list[str],
) -> None:
    """Before: every failure said the triggering version "is still the one consumers use and
    was not changed", also after the new version was promoted, and told the operator to start
    a rotation again. It says what was promoted, which consumers were (not) told, and that
    `pitcrew rotate` resumes the run at the step that failed."""
    from pitcrew.rotation import messages

    data = {"vault": "kv", "secret": "s", "trigger_version": "v1", "new_version": "v2",
            "strategy": "cosmos-keys", "failed_step": step, **done}
    note = messages.failed("run-1", data, "the site is gone.", None)
    assert "was not changed" not in note.summary and "still the one consumers use" not in (
        note.summary)
    assert "Version v2 was promoted" in note.summary
    assert f"resumes this run at step {step}" in note.summary
    for text in says:
        assert text in note.summary, note.summary
    for text in never:
        assert text not in note.summary, note.summary
    (resume,) = [a for a in note.actions if a.command == "pitcrew rotate kv/s"]
    assert resume.label.startswith("Resume")


LONG_SB_RULE = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ServiceBus/namespaces/ns/"
                "queues/" + "orders-" * 40 + "q/authorizationRules/app")


def test_policy_validate_refuses_a_resource_id_too_long_for_a_tag(tmp_path: Any) -> None:
    """pitcrew writes the id into pitcrew-resource; Key Vault refuses tag values over 256
    characters, and at promote the key is already regenerated: refused up front."""
    from pitcrew.cli import main as cli

    assert len(LONG_SB_RULE) > 256
    with pytest.raises(ValidationError, match="at most 256 characters"):
        SecretRule(vault="v", secret="s", strategy="servicebus-keys", resource=LONG_SB_RULE)
    path = tmp_path / "pitcrew.yaml"
    path.write_text(VALID + "  secrets:\n    - {vault: v, secret: s, strategy: servicebus-keys, "
                    f"resource: '{LONG_SB_RULE}'}}\n")
    result = CliRunner().invoke(cli.app, ["policy", "validate", str(path)])
    assert result.exit_code == 1, result.output
    assert "pitcrew-resource tag" in result.output
    fits = LONG_SB_RULE.replace("orders-" * 40, "orders")
    assert SecretRule(vault="v", secret="s", strategy="servicebus-keys", resource=fits)


def test_a_new_versions_tags_keep_user_tags_within_key_vaults_limits() -> None:
    from pitcrew.rotation.tags import MAX_TAG_VALUE, MAX_TAGS, for_new_version

    own = {"pitcrew-run": "r", "pitcrew-strategy": "generated", "pitcrew-resource": "x" * 257}
    previous = {"pitcrew-run": "old", "pitcrew-hook": "old", "Pitcrew-Key": "old",
                "owner": "team", "env": "prod"}
    fitted = for_new_version(own, previous)
    assert fitted.tags == {"pitcrew-run": "r", "pitcrew-strategy": "generated",
                           "owner": "team", "env": "prod"}
    assert fitted.omitted == ("pitcrew-resource",) and fitted.dropped == ()

    many = {f"t{i:02d}": str(i) for i in range(20)} | {"Owner": "team"}
    fitted = for_new_version({"pitcrew-run": "r"}, many, keep_first=("owner", None))
    assert len(fitted.tags) == MAX_TAGS
    assert fitted.tags["Owner"] == "team"  # kept first, whatever its case
    assert list(fitted.tags)[2:] == [f"t{i:02d}" for i in range(MAX_TAGS - 2)]
    assert fitted.dropped == tuple(f"t{i:02d}" for i in range(MAX_TAGS - 2, 20))

    # A user tag spelled like one of pitcrew's carried ones is not written twice.
    fitted = for_new_version({"ProviderAddress": "new"}, {"provideraddress": "old",
                                                          "big": "v" * (MAX_TAG_VALUE + 1)})
    assert fitted.tags == {"ProviderAddress": "new"} and fitted.dropped == ("big",)
