"""Call a user function the way the Python worker does: sync ones in a thread, async ones awaited.

The worker also injects `context` when the function declares it; we do the same so a function
that logs its invocation id runs unchanged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pitcrew_dev.catalog import FunctionSpec

log = logging.getLogger("pitcrew_dev.host")


@dataclass
class InvocationContext:
    """Enough of `azure.functions.Context` for application code (ids, names, a thread-local)."""

    invocation_id: str
    function_name: str
    function_directory: str
    trace_context: Any = None
    retry_context: Any = None
    thread_local_storage: threading.local = field(default_factory=threading.local)


class FunctionFailed(Exception):
    """The user function raised; the original exception is chained and already logged."""

    def __init__(self, function_name: str, invocation_id: str) -> None:
        super().__init__(f"function {function_name!r} failed (invocation {invocation_id})")
        self.function_name = function_name
        self.invocation_id = invocation_id


def _directory_of(fn: Callable[..., Any]) -> str:
    try:
        return str(Path(inspect.getfile(fn)).resolve().parent)
    except (TypeError, OSError):
        return ""


async def invoke(spec: FunctionSpec, trigger_value: Any) -> Any:
    """Run `spec`'s function with its trigger argument; raise FunctionFailed if it raises.

    The exception and its traceback go to the terminal log (never back to the caller's
    response): the real host behaves the same way.
    """
    invocation_id = str(uuid.uuid4())
    fn = spec.user_function
    kwargs: dict[str, Any] = {spec.trigger_arg: trigger_value}
    if "context" in inspect.signature(fn).parameters and spec.trigger_arg != "context":
        kwargs["context"] = InvocationContext(
            invocation_id=invocation_id,
            function_name=spec.name,
            function_directory=_directory_of(fn),
        )
    log.info("Executing '%s' (invocation %s)", spec.name, invocation_id)
    try:
        if inspect.iscoroutinefunction(fn):
            result = await fn(**kwargs)
        else:
            result = await asyncio.to_thread(fn, **kwargs)
    except Exception as exc:
        log.exception("Executed '%s' (Failed, invocation %s)", spec.name, invocation_id)
        raise FunctionFailed(spec.name, invocation_id) from exc
    log.info("Executed '%s' (Succeeded, invocation %s)", spec.name, invocation_id)
    return result
