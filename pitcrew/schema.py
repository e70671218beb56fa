"""The base every policy model shares: unknown keys are errors, models are immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    # A typo in a key must be an error, not a setting silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)
