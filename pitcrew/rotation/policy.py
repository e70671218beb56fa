"""The `rotation:` section of pitcrew.yaml (see docs/rotation.md)."""

from __future__ import annotations

from pydantic import Field

from pitcrew.schema import StrictModel


class RotationPolicy(StrictModel):
    grace_period_hours: float = Field(
        default=24.0, ge=0, description="Time that must pass before the same secret rotates again."
    )
