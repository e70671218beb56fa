"""`pitcrew audit` against the real app on the local host: pages, --all, filters."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import function_app
from pitcrew.audit import AuditRecord
from pitcrew.bootstrap import get_services
from pitcrew.cli.main import app
from pitcrew_dev.host import build_host, serving

pytestmark = pytest.mark.azurite

START = datetime(2026, 4, 10, tzinfo=UTC)
WINDOW = ["--since", START.isoformat(), "--until", (START + timedelta(days=3)).isoformat()]


@pytest.fixture
def host_url(pitcrew_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "")  # build_host turns it on; restored after
    local = build_host(
        function_app.app, function_key="k", allow_dev_principal=True, settings=os.environ
    )
    with serving(local) as url:
        yield url


@pytest.fixture
def records(host_url: str) -> list[AuditRecord]:
    made = [
        AuditRecord(actor=actor, action=action, target="kv/db-password", outcome="succeeded",
                    correlation_id=f"c{i}", time=START + timedelta(hours=7 * i))
        for i, (actor, action) in enumerate(
            [("user:alice", "replay"), ("user:bob", "rotate"), ("user:alice", "rotate"),
             ("app:pitcrew", "notify"), ("user:alice", "replay")]
        )
    ]
    for record in made:
        get_services().audit.append(record)
    return made


def _audit(url: str, *args: str) -> tuple[int, str, str]:
    env = {"PITCREW_URL": url, "PITCREW_DEV_PRINCIPAL": "reader@localhost:Reader",
           "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["audit", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_all_follows_every_page(host_url: str, records: list[AuditRecord]) -> None:
    code, out, _ = _audit(host_url, *WINDOW, "--limit", "2", "--all", "--json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == [r.record_id for r in records]


def test_one_page_then_its_continuation(host_url: str, records: list[AuditRecord]) -> None:
    code, out, err = _audit(host_url, *WINDOW, "--limit", "2", "--json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == [r.record_id for r in records[:2]]
    assert "more records: repeat with --continuation " in err
    token = err.split("--continuation ", 1)[1].split()[0]
    code, out, _ = _audit(host_url, "--limit", "2", "--continuation", token, "--json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == [r.record_id for r in records[2:4]]


def test_actor_and_action_filters(host_url: str, records: list[AuditRecord]) -> None:
    code, out, _ = _audit(host_url, *WINDOW, "--actor", "user:alice", "--action", "replay",
                          "--json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == [records[0].record_id, records[4].record_id]


def test_a_range_too_wide_is_one_line(host_url: str, records: list[AuditRecord]) -> None:
    result = CliRunner().invoke(
        app, ["audit", "--since", "2026-01-01T00:00:00", "--until", "2026-03-01T00:00:00"],
        env={"PITCREW_URL": host_url, "PITCREW_DEV_PRINCIPAL": "reader@localhost:Reader"},
    )
    # main() turns ApiError into one line and exit 1; under CliRunner the error itself shows.
    assert "HTTP 400" in str(result.exception) and "at most 31 days" in str(result.exception)
