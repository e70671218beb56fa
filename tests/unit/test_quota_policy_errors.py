"""A bad `quota.capacity[].resource` is a policy problem like any other: `pitcrew policy
validate` lists it under its key (no traceback), and the runtime refuses the policy with
PolicyInvalid, so /api/health answers 503 rather than the check escaping as InvalidInput."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pitcrew.cli.main import app
from pitcrew.errors import PolicyInvalid
from pitcrew.http import operator
from pitcrew.http.errors import render_error
from pitcrew.runtime import Runtime, Settings, reset_runtime

WHERE = "quota.capacity[0].resource"
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
# The example in docs/quota.md, placeholders and all; and ids that are not resource ids.
DOCS_EXAMPLE = ("/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.DocumentDB/"
                "databaseAccounts/<a>")
BAD_RESOURCES = [
    DOCS_EXAMPLE,
    "not a resource id at all",
    "/subscriptions/nope/resourceGroups/app-rg/providers/Microsoft.DocumentDB/databaseAccounts/a",
]


def policy_with(resource: str) -> str:
    return VALID + (
        "quota:\n"
        "  capacity:\n"
        "    - name: cosmos-ru\n"
        f"      resource: {resource}\n"
        "      metric: NormalizedRUConsumption\n"
        "      aggregation: Maximum\n"
        "      capacity: 100\n"
        "      unit: Percent\n"
    )


@pytest.fixture
def no_runtime() -> Iterator[None]:
    reset_runtime()
    yield
    reset_runtime()


@pytest.mark.parametrize("resource", BAD_RESOURCES)
def test_validate_lists_a_bad_capacity_resource_under_its_key(tmp_path: Path,
                                                              resource: str) -> None:
    path = tmp_path / "pitcrew.yaml"
    path.write_text(policy_with(resource))
    result = CliRunner().invoke(app, ["policy", "validate", str(path)])
    # A clean exit 1 (typer.Exit), not an exception the runner caught.
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "(1 problem(s))" in result.output
    expected = f"{WHERE}: must be a resource id (subscriptions/<subscription guid>/"
    assert expected in result.output, result.output
    assert "resource: resource:" not in result.output  # the location is said once


def test_a_resource_outside_a_resource_group_is_still_refused(tmp_path: Path) -> None:
    scope_only = ("/subscriptions/00000000-0000-0000-0000-000000000000/providers/"
                  "Microsoft.Compute/locations/eastus")
    path = tmp_path / "pitcrew.yaml"
    path.write_text(policy_with(scope_only))
    result = CliRunner().invoke(app, ["policy", "validate", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"{WHERE}: must be a resource id" in result.output


def test_a_good_capacity_resource_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "pitcrew.yaml"
    path.write_text(policy_with(
        "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/app-rg/providers/"
        "Microsoft.DocumentDB/databaseAccounts/app-cosmos"))
    result = CliRunner().invoke(app, ["policy", "validate", str(path)])
    assert result.exit_code == 0, result.output


def test_the_runtime_refuses_the_policy_and_health_answers_503(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_runtime: None) -> None:
    path = tmp_path / "pitcrew.yaml"
    path.write_text(policy_with(DOCS_EXAMPLE))
    runtime = Runtime(Settings.from_env({"PITCREW_POLICY_PATH": str(path)}))
    with pytest.raises(PolicyInvalid) as caught:
        runtime.policy()
    assert [p.split(":")[0] for p in caught.value.problems] == [WHERE]
    # What every HTTP entry point answers when the policy is refused.
    answer = render_error(caught.value)
    assert answer.status == 503 and answer.body["error"] == "policy_invalid"

    monkeypatch.setenv("PITCREW_POLICY_PATH", str(path))
    reset_runtime()
    health = operator.health()
    assert health.status == 503
    assert health.body["policy"] == "invalid"
    assert any(p.startswith(f"{WHERE}: ") for p in health.body["problems"])
