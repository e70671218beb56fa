"""Policy as code: precise errors, and the CLI exits non-zero on an invalid file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from pitcrew.cli.main import app
from pitcrew.errors import PolicyInvalid
from pitcrew.policy import load_policy, parse_policy

REPO = Path(__file__).resolve().parents[2]
VALID = """
version: 1
channels:
  ops:
    type: webhook
    url: https://hooks.example.com/pitcrew
routes:
  - name: all
    channels: [ops]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(text, source="test.yaml")
    return caught.value.problems


@pytest.mark.parametrize("path", ["pitcrew.yaml", "examples/pitcrew.demo.yaml"])
def test_shipped_policies_are_valid(path: str) -> None:
    load_policy(REPO / path)


def test_valid_policy_defaults() -> None:
    policy = parse_policy(VALID)
    assert policy.mode == "act"
    assert policy.outbox.base_delay_seconds > 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID.replace("version: 1", "version: 2"), "version: Input should be 1"),
        (
            VALID.replace("url: https", "tiemout: 3\n    url: https"),
            "channels.ops.tiemout: is not a known key",
        ),
        (VALID.replace("https://hooks.example.com/pitcrew", "not a url"), "channels.ops.url"),
        (
            VALID.replace("channels: [ops]", "channels: [pager]"),
            "routes[0].channels[0]: unknown channel 'pager' (defined: ops)",
        ),
        (
            VALID.replace("    url: https://hooks.example.com/pitcrew\n", ""),
            "channels.ops: give exactly one of 'url' or 'url_setting'",
        ),
        (VALID + "mode: yolo\n", "mode: Input should be 'act' or 'plan'"),
        ("version: 1\nchannels: {}\nroutes: []\n", "channels: "),
        ("- just\n- a list\n", "(top level): must be a mapping"),
        ("version: 1\nchannels: [\n", "line "),
        (VALID.replace("name: all", "name: All Routes"), "routes[0].name"),
    ],
)
def test_errors_name_the_key_and_the_problem(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found


def test_missing_file() -> None:
    with pytest.raises(PolicyInvalid, match="file not found"):
        load_policy("/nonexistent/pitcrew.yaml")


def test_cli_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    result = runner.invoke(app, ["policy", "validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace("channels: [ops]", "channels: [pager]"))
    result = runner.invoke(app, ["policy", "validate", str(bad)])
    assert result.exit_code == 1
    assert "unknown channel 'pager'" in result.output


def _refused(model: type[Any], **fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        model(**fields)
    (error,) = caught.value.errors()
    return str(error["msg"]).removeprefix("Value error, ")


def test_pattern_checks_keep_their_error_texts() -> None:
    """Every field checked against a pattern (schema.matching) says the same as before."""
    from pitcrew.alerting.policy import InhibitRule, Matcher, RouteNode
    from pitcrew.housekeeping.policy import CertificateRule, ExpiryPolicy, KeyRule
    from pitcrew.quota.policy import QuotaPolicy

    long = "x" * 70
    assert _refused(QuotaPolicy, subscriptions=[long]) == (
        f"{long[:60]!r} is not a subscription id (a GUID)")
    assert _refused(QuotaPolicy, providers=["compute"]) == (
        "'compute' is not a resource provider (Microsoft.Compute)")
    assert _refused(QuotaPolicy, locations=["East US"]) == (
        "'East US' is not a location name (eastus, swedencentral)")
    assert _refused(InhibitRule, source_matchers=["a=b"], target_matchers=["a=b"],
                    equal=["1a"]) == "'1a' is not a label name"
    assert _refused(RouteNode, receiver="ops", group_by=["...", "x"]).startswith("'...'")
    assert _refused(RouteNode, receiver="ops", group_by=["a", "b c"]) == (
        "'b c' is not a label name")
    with pytest.raises(ValueError) as caught:
        Matcher("a b", "=", "x")
    assert str(caught.value) == "'a b' is not a label name (letters, digits, _ . -)"
    assert _refused(ExpiryPolicy, vaults=["kv"]) == (
        "'kv' is not a Key Vault name (3-24 letters, digits, -)")
    assert _refused(KeyRule, vault="kv/1", key="k") == "'kv/1' is not a Key Vault name or glob"
    assert _refused(CertificateRule, vault="kv", certificate="").startswith("String should")
    assert _refused(CertificateRule, vault="kv-*", certificate="a b") == (
        "'a b' is not a Key Vault name or glob")
    rule = KeyRule(vault="KV-*", key="db-[ab]")
    assert rule.matches("kv-prod", "DB-A") and not rule.matches("kv-prod", "db-c")
    receivers = VALID.replace("  ops:\n", "  Ops:\n").replace("[ops]", "[Ops]")
    assert any("receiver name 'Ops' must be lower-case letters, digits and '-', starting with "
               "a letter" in p for p in problems(receivers))
    intervals = VALID + "time_intervals:\n  Night: []\n"
    assert any("time interval name 'Night' must be lower-case letters, digits and '-', "
               "starting with a letter" in p for p in problems(intervals))
