"""Install the deployed app's dependencies into .python_packages from the hash-pinned lock.

azure.yaml deploys with `remoteBuild: false`, so Azure never runs `pip install -r requirements.txt`
(ranges) on its own: the package azd uploads already holds every dependency, installed here from
requirements.lock.txt with `--require-hashes` (a file whose sha256 is not in the lock is refused).
Wheels are chosen for the Flex Consumption runtime (CPython 3.11, Linux x86_64, glibc >= 2.28),
whatever machine runs this script: only wheels, never a source build.

Run by azd as the service's prepackage hook (azure.yaml) and by the deploy workflow before
`azd deploy`. It rebuilds only when the lock changed (.python_packages/.lock-sha256).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock.txt"
TARGET = ROOT / ".python_packages" / "lib" / "site-packages"
STAMP = ROOT / ".python_packages" / ".lock-sha256"
# The Flex Consumption Python 3.11 runtime: CPython on Linux x86_64 (glibc 2.28 or newer). pip does
# not widen a `manylinux_2_28` platform to older glibc tags by itself, so each is named; the legacy
# manylinux2014 tag brings manylinux2010 and manylinux1 with it.
PLATFORMS = [
    *(f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)),
    "manylinux2014_x86_64",
]
PLATFORM = [*(arg for p in PLATFORMS for arg in ("--platform", p)), "--implementation", "cp"]
PYTHON_VERSION = "3.11"


def pip_command(target: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--require-hashes",
        "--only-binary=:all:",
        *PLATFORM,
        "--python-version",
        PYTHON_VERSION,
        "--target",
        str(target),
        "-r",
        str(LOCK),
    ]


def lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--force", action="store_true", help="rebuild even if the lock is unchanged"
    )
    args = parser.parse_args(argv)
    digest = lock_digest()
    if not args.force and STAMP.is_file() and STAMP.read_text().strip() == digest:
        print(f"package_app: {TARGET.relative_to(ROOT)} already matches requirements.lock.txt")
        return 0
    shutil.rmtree(ROOT / ".python_packages", ignore_errors=True)
    TARGET.mkdir(parents=True)
    # A fixed argument list built above; pip is this interpreter's own module.
    subprocess.run(pip_command(TARGET), check=True, cwd=ROOT)  # noqa: S603
    STAMP.write_text(digest + "\n")
    print(f"package_app: {TARGET.relative_to(ROOT)} installed from requirements.lock.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
