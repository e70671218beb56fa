"""The `deadletter:` section of pitcrew.yaml (see docs/deadletter.md)."""

from __future__ import annotations

from pitcrew.schema import StrictModel


class DeadletterPolicy(StrictModel):
    pass
