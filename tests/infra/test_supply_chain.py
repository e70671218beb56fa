"""Supply chain: what the deployed app installs is pinned by hash, and so is what CI runs.

- requirements.lock.txt pins every package of requirements.txt and all their dependencies, each
  with the sha256 of its files; `make install` and the deploy package install from it with
  `--require-hashes`, and the dev tools cannot move an app pin;
- every GitHub Action is pinned to a full commit SHA (dependabot keeps the SHAs current).

No network: the files are read as text, the dependency closure from the installed metadata.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock.txt"
WORKFLOWS = ROOT / ".github" / "workflows"
SHA256 = re.compile(r"--hash=sha256:[0-9a-f]{64}")
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$", re.M)
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
TAG_COMMENT = re.compile(r"^\s+#\s*v\d+(\.\d+)*\s*$")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...]
    line: str


def requirement_lines(text: str) -> list[str]:
    """Logical lines of a requirements file: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    lines = []
    for raw in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            lines.append(line)
    return lines


def parse_lock(text: str) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    for line in requirement_lines(text):
        assert not line.startswith("-"), f"option in the lock (index or link?): {line}"
        spec = line.split(" --hash=")[0].strip()
        req = Requirement(spec)
        specifiers = list(req.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"not pinned: {spec}"
        pins[canonicalize_name(req.name)] = Pin(
            canonicalize_name(req.name),
            specifiers[0].version,
            tuple(SHA256.findall(line)),
            line,
        )
    return pins


def direct_requirements() -> list[Requirement]:
    return [
        Requirement(line) for line in requirement_lines((ROOT / "requirements.txt").read_text())
    ]


def test_lock_pins_every_package_with_sha256_hashes_and_no_index() -> None:
    text = LOCK.read_text()
    assert not re.search(r"--(extra-)?index-url|--find-links|^-f\s|file://", text, re.M), (
        "the lock names an index or a local path: it must install from the configured index only"
    )
    pins = parse_lock(text)
    assert len(pins) >= len(direct_requirements())
    for pin in pins.values():
        assert pin.hashes, f"{pin.name}=={pin.version} has no --hash=sha256: line"


def test_every_requirement_is_in_the_lock_at_a_version_it_allows() -> None:
    pins = parse_lock(LOCK.read_text())
    for req in direct_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"requirements.txt has {req.name}, the lock does not: scripts/lock.sh"
        assert req.specifier.contains(pins[name].version, prereleases=True), (
            f"the lock pins {name}=={pins[name].version}, outside requirements.txt's {req}: "
            "scripts/lock.sh"
        )


def _dependencies(name: str, extras: frozenset[str] = frozenset()) -> list[Requirement]:
    """Dependencies of an installed distribution that apply on this interpreter, with the
    dependencies of the extras asked for (PyJWT[crypto] needs cryptography)."""
    found = []
    for spec in importlib.metadata.requires(name) or []:
        req = Requirement(spec)
        if req.marker is None or any(
            req.marker.evaluate({"extra": extra}) for extra in {"", *extras}
        ):
            found.append(req)
    return found


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11) or sys.platform != "linux",
    reason="the lock is resolved for CPython 3.11 on Linux (the Flex Consumption runtime)",
)
def test_lock_covers_every_transitive_dependency_and_this_environment_matches_it() -> None:
    pins = parse_lock(LOCK.read_text())
    todo = list(direct_requirements())
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is needed by the app but missing from the lock"
        key = name + "[" + ",".join(sorted(req.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        installed = importlib.metadata.version(name)
        assert installed == pins[name].version, (
            f"{name} {installed} installed, the lock pins {pins[name].version}: a dev tool moved "
            "an app package (make install installs the lock first, then the dev tools under it)"
        )
        todo.extend(_dependencies(name, frozenset(req.extras)))
    seen = {key.split("[")[0] for key in seen}
    unused = set(pins) - seen
    assert not unused, f"the lock pins packages nothing needs: {sorted(unused)}"


def test_make_installs_the_app_from_the_lock_with_require_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    stamp = makefile.split("$(PY_STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "$(LOCK)" in stamp.splitlines()[0], "the stamp must be rebuilt when the lock changes"
    assert re.search(r"LOCK := requirements\.lock\.txt", makefile)
    assert re.search(r"--require-hashes -r \$\(LOCK\)", stamp)
    assert re.search(r"-r requirements-dev\.txt -c \$\(APP_PINS\)", stamp)
    assert "--no-deps -e ." in stamp
    dev = requirement_lines((ROOT / "requirements-dev.txt").read_text())
    assert not any(line.startswith(("-r", "--requirement")) for line in dev), (
        "requirements-dev.txt must not re-resolve the app's requirements"
    )


def test_the_deploy_package_installs_from_the_lock_with_require_hashes() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import package_app
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    command = package_app.pip_command(Path("/target"))
    assert "--require-hashes" in command and "--only-binary=:all:" in command
    assert command[command.index("-r") + 1] == str(LOCK)
    assert command[command.index("--python-version") + 1] == "3.11"
    azure_yaml = (ROOT / "azure.yaml").read_text()
    assert re.search(r"^\s+remoteBuild: false$", azure_yaml, re.M), "Azure would resolve ranges"
    assert "prepackage:" in azure_yaml and "scripts/package_app.py" in azure_yaml
    deploy = (WORKFLOWS / "deploy-environment.yml").read_text()
    assert deploy.index("scripts/package_app.py") < deploy.index("run: azd deploy")
    assert ".python_packages" not in (ROOT / ".funcignore").read_text()


def _uses() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        for m in USES.finditer(path.read_text()):
            found.append((path.name, m.group("ref"), m.group("rest")))
    return found


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_tag() -> None:
    uses = _uses()
    assert len(uses) >= 8
    for workflow, ref, rest in uses:
        if ref.startswith("./"):
            continue  # a reusable workflow of this repository, pinned by the commit itself
        assert PINNED_ACTION.match(ref), f"{workflow}: {ref} is not pinned to a 40-hex commit SHA"
        assert TAG_COMMENT.match(rest), f"{workflow}: {ref} needs its tag as a comment (# v1.2.3)"


def test_dependabot_follows_actions_and_pip() -> None:
    config = (ROOT / ".github" / "dependabot.yml").read_text()
    ecosystems = set(re.findall(r"package-ecosystem:\s*([\w-]+)", config))
    assert {"github-actions", "pip"} <= ecosystems


def test_lock_script_uses_pip_tools_with_hashes() -> None:
    script = (ROOT / "scripts" / "lock.sh").read_text()
    assert "--generate-hashes" in script
    assert "--output-file requirements.lock.txt" in script
    assert "requirements.txt" in script
