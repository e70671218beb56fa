"""The errors pitcrew raises on purpose; each names what was wrong and never carries a secret."""

from __future__ import annotations


class PitcrewError(Exception):
    """Base of pitcrew's own errors."""


class InvalidInput(PitcrewError):
    """Input that pitcrew will not act on: not JSON, wrong shape, a missing or bad field.

    Over HTTP it is a 400 with `{"error": "invalid_input", "field": ..., "message": ...}`;
    from a trigger it is raised so the platform dead-letters rather than silently drops it.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field or "body"
        self.problem = problem
        super().__init__(f"{self.field}: {problem}")

    def to_dict(self) -> dict[str, str]:
        return {"error": "invalid_input", "field": self.field, "message": str(self)}


class NotFound(PitcrewError):
    """What a request names by a well-formed id does not exist: HTTP 404 with
    `{"error": "not_found", "field": ..., "message": ...}`. Not an InvalidInput: the request
    was good, there is nothing at that name (a malformed id is still a 400)."""

    def __init__(self, field: str, ident: str) -> None:
        self.field = field
        self.problem = f"{ident[:80]!r} was not found"
        super().__init__(f"{field}: {self.problem}")

    def to_dict(self) -> dict[str, str]:
        return {"error": "not_found", "field": self.field, "message": str(self)}

    def as_input(self) -> InvalidInput:
        """The same words as a 400 on the field, for a name a request's body gives: the body
        is what is wrong then, not the route."""
        return InvalidInput(self.field, self.problem)


class PolicyInvalid(PitcrewError):
    """pitcrew.yaml failed validation: the app refuses to act and says why."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"policy {source} is invalid ({len(problems)} problem(s)):\n{listed}")


class Unauthorized(PitcrewError):
    """No authenticated principal: HTTP 401."""


class Forbidden(PitcrewError):
    """An authenticated principal without the role the operation needs: HTTP 403."""


class RetryLater(PitcrewError):
    """Work that cannot finish now but must not be dropped: raised so the platform retries."""


class Conflict(PitcrewError):
    """An ETag-conditional write lost: another writer changed the row since it was read."""


class ConfigurationError(RuntimeError):
    """A required app setting is missing or malformed; the message names it."""


def error_summary(exc: BaseException, *, with_message: bool = True) -> str:
    """A failure on one line, as the Azure SDKs describe it: the error's type, HTTP status
    and Azure's error code, then (`with_message`) the first line of Azure's message, at most
    300 characters. Only the first line: the SDK's later lines quote the response body.
    Without the message where it may quote a secret (an unexpected error's own text)."""
    error = getattr(exc, "error", None)
    head = " ".join(str(part) for part in (
        type(exc).__name__, getattr(exc, "status_code", None), getattr(error, "code", None))
        if part)
    if not with_message:
        return head
    message = getattr(error, "message", None) or getattr(exc, "message", None) or str(exc)
    lines = str(message).strip().splitlines()
    first = " ".join(lines[0].split()) if lines else ""
    return (f"{head}: {first}" if first else head)[:300]
