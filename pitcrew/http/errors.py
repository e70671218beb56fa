"""The one place pitcrew's errors become HTTP answers.

Every entry point takes plain data (method, headers, query, body) and returns an HttpResult;
`http_errors` maps what it raises: bad input is a 400 naming the field, a well-formed id of
nothing a 404 naming it, a missing principal 401, a missing role 403, an invalid policy or a
live lease 503, anything else a logged, generic 500 — never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, ParamSpec

from pitcrew.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    PolicyInvalid,
    RetryLater,
    Unauthorized,
)

log = logging.getLogger(__name__)
P = ParamSpec("P")


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


def render_error(exc: Exception, where: str = "") -> HttpResult:
    """The HTTP answer for an exception an entry point raised."""
    if isinstance(exc, InvalidInput):
        return HttpResult(400, exc.to_dict())
    if isinstance(exc, NotFound):
        return HttpResult(404, exc.to_dict())
    if isinstance(exc, Unauthorized):
        return HttpResult(401, {"error": "unauthorized", "message": str(exc)},
                          {"WWW-Authenticate": 'Bearer realm="pitcrew"'})
    if isinstance(exc, Forbidden):
        return _error(403, "forbidden", str(exc))
    if isinstance(exc, PolicyInvalid):
        log.error("refusing to act: %s", exc)
        return _error(503, "policy_invalid", "pitcrew refuses to act on an invalid policy",
                      problems=exc.problems, source=exc.source)
    if isinstance(exc, RetryLater):
        return HttpResult(503, {"error": "retry_later", "message": str(exc)},
                          {"Retry-After": "30"})
    log.error("unhandled error in %s", where or "an HTTP entry point", exc_info=exc)
    return _error(500, "internal_error", "pitcrew failed to handle the request; "
                  "it is logged and the sender should retry")


def http_errors(fn: Callable[P, HttpResult]) -> Callable[P, HttpResult]:
    """Answer whatever `fn` raises with `render_error`."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> HttpResult:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            return render_error(exc, fn.__name__)

    return wrapper


def _error(status: int, code: str, message: str, **extra: Any) -> HttpResult:
    return HttpResult(status, {"error": code, "message": message, **extra})
