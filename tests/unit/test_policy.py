"""Policy as code: precise errors, and the CLI exits non-zero on an invalid file."""

from __future__ import annotations

from pathlib import Path

import pytest
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
