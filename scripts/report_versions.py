"""Report new versions of what dependabot cannot follow.

- the extension bundle range in host.json (Microsoft.Azure.Functions.ExtensionBundle);
- the Python version of the Functions runtime pinned in infra/ (functionAppConfig.runtime);
- the API version of every Bicep resource type in infra/.

It reads the pinned values from the repository and compares them with what Azure publishes:
the bundle index on the Functions CDN, the Flex Consumption runtime stacks
(`az functionapp list-flexconsumption-runtimes`) and the provider API versions
(`az provider show`). It needs the network and, for the last two, a logged-in `az`; run by
.github/workflows/versions.yml, which files the report as an issue. Exit code 0 always: a newer
version is news, not a failure. `--offline` prints only what is pinned (usable anywhere).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE_INDEX = "https://functionscdn.azureedge.net/public/ExtensionBundles/{id}/index.json"
RESOURCE = re.compile(r"^\s*resource\s+\w+\s+'(?P<type>[\w./]+)@(?P<version>[\w.-]+)'", re.M)
PYTHON_PIN = re.compile(r"param pythonVersion string = '(?P<version>[\d.]+)'")


@dataclass(frozen=True)
class Finding:
    what: str
    pinned: str
    latest: str | None

    @property
    def outdated(self) -> bool:
        return self.latest is not None and self.latest != self.pinned


def pinned_bundle() -> tuple[str, str]:
    bundle = json.loads((ROOT / "host.json").read_text())["extensionBundle"]
    return bundle["id"], bundle["version"]


def pinned_python() -> str:
    match = PYTHON_PIN.search((ROOT / "infra" / "modules" / "functionapp.bicep").read_text())
    if not match:
        raise SystemExit("pythonVersion default not found in infra/modules/functionapp.bicep")
    return match.group("version")


def pinned_api_versions() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "infra").rglob("*.bicep")):
        for m in RESOURCE.finditer(path.read_text()):
            found.setdefault(m.group("type"), set()).add(m.group("version"))
    return found


def _az(*args: str) -> object:
    # Fixed argument lists built in this file; `az` is resolved on PATH by design.
    command = ["az", *args, "-o", "json"]
    out = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
    return json.loads(out.stdout)


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v))


def latest_bundle(bundle_id: str) -> str | None:
    url = BUNDLE_INDEX.format(id=bundle_id)
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (fixed https URL)
        versions: list[str] = json.loads(response.read())
    return max(versions, key=_version_key) if versions else None


def bundle_range_covers(range_: str, version: str) -> bool:
    m = re.match(r"\[(?P<low>[\d.*]+),\s*(?P<high>[\d.]+)\)", range_)
    if not m:
        return False
    major_low = int(m.group("low").split(".")[0])
    major_high = int(m.group("high").split(".")[0])
    return major_low <= int(version.split(".")[0]) < major_high


def latest_python(location: str) -> str | None:
    stacks = _az(
        "functionapp",
        "list-flexconsumption-runtimes",
        "--location",
        location,
        "--runtime",
        "python",
    )
    versions = [s["version"] for s in stacks] if isinstance(stacks, list) else []
    return max(versions, key=_version_key) if versions else None


def latest_api_version(resource_type: str) -> str | None:
    namespace, _, rest = resource_type.partition("/")
    provider = _az("provider", "show", "--namespace", namespace)
    assert isinstance(provider, dict)
    for rt in provider.get("resourceTypes", []):
        if rt["resourceType"].lower() == rest.lower():
            stable = [v for v in rt["apiVersions"] if "preview" not in v]
            return max(stable or rt["apiVersions"], key=_version_key)
    return None


def report(offline: bool, location: str) -> list[Finding]:
    findings: list[Finding] = []
    bundle_id, bundle_range = pinned_bundle()
    latest = None if offline else latest_bundle(bundle_id)
    if latest and bundle_range_covers(bundle_range, latest):
        latest = bundle_range  # the range already admits the newest bundle
    findings.append(Finding(f"host.json {bundle_id}", bundle_range, latest))
    python = pinned_python()
    findings.append(
        Finding("Flex Consumption Python", python, None if offline else latest_python(location))
    )
    for resource_type, versions in sorted(pinned_api_versions().items()):
        pinned = max(versions, key=_version_key)
        latest_api = None if offline else latest_api_version(resource_type)
        if latest_api and _version_key(latest_api) <= _version_key(pinned):
            latest_api = pinned
        label = resource_type + (
            f" (also {', '.join(sorted(versions - {pinned}))})" if len(versions) > 1 else ""
        )
        findings.append(Finding(label, pinned, latest_api))
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="only list what is pinned")
    parser.add_argument("--location", default="eastus", help="region for runtime stacks")
    args = parser.parse_args(argv)
    findings = report(args.offline, args.location)
    outdated = [f for f in findings if f.outdated]
    print("| what | pinned | newest published |")
    print("| --- | --- | --- |")
    for f in findings:
        mark = " **(newer)**" if f.outdated else ""
        print(f"| {f.what} | {f.pinned} | {f.latest or 'n/a'}{mark} |")
    print()
    print(f"{len(outdated)} item(s) with a newer version.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
