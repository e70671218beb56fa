"""The base every policy model shares: unknown keys are errors, models are immutable; and the
one check of a value against a pattern that field validators share."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, HttpUrl

from pitcrew.links import safe_link


class StrictModel(BaseModel):
    # A typo in a key must be an error, not a setting silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


def matching(value: str, pattern: re.Pattern[str], problem: str, *, shown: int | None = 100,
             max_length: int | None = None, before: str = "") -> str:
    """`value` when it matches `pattern` (and is at most `max_length` long); else a ValueError
    saying `before`, its first `shown` characters quoted (None: all), then `problem` (a
    validator's error)."""
    if not pattern.match(value) or (max_length is not None and len(value) > max_length):
        raise ValueError(f"{before}{value[:shown]!r}{problem}")
    return value


def _https_link(url: HttpUrl) -> HttpUrl:
    # A link reaches a person only through pitcrew.links.safe_link, which drops anything but
    # https without a word: refused here, the policy names the field instead.
    if safe_link(str(url)) is None:
        raise ValueError("must be an https URL without credentials (notifications carry only "
                         "https links; any other is left out)")
    return url


HttpsLink = Annotated[HttpUrl, AfterValidator(_https_link)]
"""A URL the policy gives for a link in notifications: what `safe_link` keeps."""
