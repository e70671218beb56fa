"""The `pitcrew` command: run the local host, send samples, validate policy, read the audit
trail, rotate, handle dead letters.

Operator commands talk to the app's HTTP API (never to the workload's resources directly): the
app performs every change with its own identity and audits who asked. Each area's commands live
in their own module of this package; this one only assembles them.
"""

from __future__ import annotations

import sys

import typer

from pitcrew.cli import (
    alerting,
    audit,
    deadletter,
    dev,
    expiry,
    policy,
    quota,
    recovery,
    rotation,
)
from pitcrew.cli.client import ApiError
from pitcrew.cli.output import fail

app = typer.Typer(
    name="pitcrew",
    help="Keeps a mission-critical Azure workload serviced while it runs.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(policy.app, name="policy")
app.add_typer(deadletter.app, name="dlq")
app.add_typer(expiry.app, name="expiry")
app.add_typer(quota.app, name="quota")
app.add_typer(recovery.drill_app, name="drill")
app.add_typer(recovery.images_app, name="images")
app.command("backups")(recovery.backups)
app.command("drills")(recovery.drills)
app.command()(dev.dev)
app.command()(dev.send)
app.command()(audit.audit)
app.command("rotate")(rotation.rotate)
app.command("rotations")(rotation.rotations)
app.command("alerts")(alerting.alerts)
app.add_typer(alerting.silences_app, name="silences")
app.add_typer(alerting.notifications_app, name="notifications")


def main() -> None:
    try:
        app()
    except ApiError as exc:
        fail(str(exc))
        sys.exit(1)
    except SystemExit as exc:
        if exc.code == 130:  # Ctrl-C: typer exits 130 without a word
            fail("interrupted: this command stopped waiting, but what it already asked of the "
                 "app goes on there; `pitcrew audit` shows what was done")
        raise


if __name__ == "__main__":
    import os

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
