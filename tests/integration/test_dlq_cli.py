"""`pitcrew dlq` against the real function app on the local host (Azurite, queue triggers):
a scan answers at once and the command follows the job to the end; listings page and filter;
a body is shown decoded; purge asks before it deletes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import function_app
from pitcrew.cli.main import app
from pitcrew_dev.host import build_host, serving
from tests.integration.test_deadletter_storage import poison, write_policy

KEY = "test-function-key"


@pytest.fixture
def cli_env(pitcrew_env: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[str]:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    write_policy(pitcrew_env, (
        "deadletter:\n  scan_max_messages: 25\n  sources:\n"
        f"    - name: orders\n      type: storage-queue\n      queue: {unique_name}\n"))
    host = build_host(function_app.app, function_key=KEY, allow_dev_principal=True,
                      settings=os.environ)
    with serving(host) as url:
        monkeypatch.setenv("PITCREW_URL", url)
        monkeypatch.setenv("PITCREW_FUNCTION_KEY", KEY)
        monkeypatch.setenv("PITCREW_DEV_PRINCIPAL", "ops@example.com:Operator")
        monkeypatch.setenv("COLUMNS", "250")
        yield unique_name


def test_scan_follows_the_job_then_list_show_purge(cli_env: str) -> None:
    runner = CliRunner()
    poison(cli_env, [json.dumps({"order": i, "note": "broken" if i == 7 else "ok"})
                     for i in range(60)])
    scanned = runner.invoke(app, ["dlq", "scan"])
    assert scanned.exit_code == 0, scanned.output
    # The host's own scan timer may take some of them first (it fires every minute): the job
    # succeeds either way, and the group holds all 60 once, whoever ingested them.
    assert "succeeded: received" in scanned.output
    groups = runner.invoke(app, ["dlq", "groups", "--json"])
    (group,) = json.loads(groups.output)["groups"]
    assert group["count"] == 60
    listed = runner.invoke(app, ["dlq", "show", group["id"], "--text", "broken", "--all",
                                 "--limit", "10"])
    assert listed.exit_code == 0, listed.output
    assert '"order": 7' in listed.output and '"order": 8' not in listed.output
    page = runner.invoke(app, ["dlq", "show", group["id"], "--limit", "50", "--json",
                               "--status", "failed"])
    messages = json.loads(page.output)["messages"]
    assert len(messages) == 50
    shown = runner.invoke(app, ["dlq", "show", messages[0]["id"], "--body"])
    assert shown.exit_code == 0, shown.output
    assert '"order":' in shown.output and "decoded from base64" in shown.output
    refused = runner.invoke(app, ["dlq", "purge", "--group", group["id"]], input="n\n")
    assert refused.exit_code == 1 and "would purge 60" in refused.output
    purged = runner.invoke(app, ["dlq", "purge", "--group", group["id"], "--yes"])
    assert purged.exit_code == 0, purged.output
    assert "purged 60 message(s)" in purged.output
