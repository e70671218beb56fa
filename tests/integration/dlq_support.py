"""The dead-letter services of the app the tests run against."""

from __future__ import annotations

from pitcrew.bootstrap import get_services
from pitcrew.deadletter.ports import DeadletterServices


def get_deadletter() -> DeadletterServices:
    return get_services().deadletter
