"""Shared fixtures. Storage tests run against a real Azurite: one per pytest-xdist worker, all
started by the controller (or one, on the usual ports, for a run without workers)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pitcrew_dev.azurite import AZURITE_PORTS, Azurite, ensure_azurite, ports_from

if TYPE_CHECKING:
    from tests.receiver import Receiver

# The samples shaped exactly as Azure sends them live in ../shared/samples beside the clone;
# examples/samples is the repo's copy, for a clone on its own (a GitHub runner).
_SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
SAMPLES = (
    _SHARED_SAMPLES
    if _SHARED_SAMPLES.is_dir()
    else Path(__file__).resolve().parents[1] / "examples" / "samples"
)


# The CLI's consoles fix their width when first imported, from COLUMNS (pytest-xdist sets 80 in
# its workers, whose temporary paths are longer too): tests read the CLI's words at one width.
os.environ["COLUMNS"] = "200"

_WORKER_AZURITES = pytest.StashKey[list[Azurite]]()


def _azurite_ports(worker: int) -> tuple[int, int, int]:
    """Each pytest-xdist worker has an Azurite of its own (the first, or a session without
    workers, on Azurite's usual ports): the app's job and flush queues have fixed names, and a
    local host under test in one worker would otherwise take another worker's messages."""
    return AZURITE_PORTS if worker == 0 else ports_from(AZURITE_PORTS[0] + 100 * worker)


def _this_worker() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... under pytest-xdist
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def pytest_configure(config: pytest.Config) -> None:
    # The controller starts every worker's Azurite before any worker runs and stops them last:
    # a worker that started its own would stop it under the tests that still use the usual
    # ports (a policy's UseDevelopmentStorage=true) when it finished.
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 0 and not hasattr(config, "workerinput"):
        config.stash[_WORKER_AZURITES] = [
            ensure_azurite(ports=_azurite_ports(worker)) for worker in range(workers)]


def pytest_unconfigure(config: pytest.Config) -> None:
    for handle in config.stash.get(_WORKER_AZURITES, []):
        if handle.started:
            handle.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    handle = ensure_azurite(ports=_azurite_ports(_this_worker()))
    yield handle
    if handle.started:
        handle.stop()


@pytest.fixture
def storage_connection_string(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    return azurite.connection_string


@pytest.fixture
def unique_name() -> str:
    """A name valid for tables, queues and containers, unique per test, so tests share Azurite."""
    return "t" + uuid.uuid4().hex[:16]


@pytest.fixture(autouse=True)
def _no_real_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must never reach a real subscription through ambient credentials.
    for name in ("AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    os.environ.setdefault("PITCREW_ENVIRONMENT", "test")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    from tests.receiver import Receiver

    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def pitcrew_env(
    storage_connection_string: str,
    unique_name: str,
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """pitcrew configured against Azurite (tables unique to the test) with a webhook channel
    pointing at `receiver`. Yields the policy file path."""
    from pitcrew.bootstrap import reset_services
    from pitcrew.runtime import reset_runtime

    policy = tmp_path / "pitcrew.yaml"
    policy.write_text(
        "version: 1\n"
        "channels:\n"
        "  hook:\n"
        "    type: webhook\n"
        f"    url: {receiver.url}\n"
        "    timeout_seconds: 1\n"
        "routes:\n"
        "  - name: all\n"
        "    channels: [hook]\n"
        "outbox:\n"
        "  base_delay_seconds: 0.01\n"
        "  max_delay_seconds: 0.05\n"
        "  escalate_after_attempts: 3\n"
    )
    monkeypatch.setenv("PITCREW_POLICY_PATH", str(policy))
    monkeypatch.setenv("PITCREW_TABLE_PREFIX", unique_name)
    reset_runtime()
    reset_services()
    yield policy
    reset_runtime()
    reset_services()
