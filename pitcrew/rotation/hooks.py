"""Generated credentials: the character policy and the provider hooks that apply and test them.

A hook is registered by name and referenced from pitcrew.yaml (`strategy: generated`,
`hook: NAME`, `target: ...`). `apply(target, value)` makes the provider accept the new value (it
must be idempotent: it may be called again with the same value after a crash); `test(target,
value)` proves it, raising CredentialRejected when the provider refuses it. Neither may log or
raise with the value in the message.

    from pitcrew.rotation.hooks import credential_hook

    @credential_hook("sql-login")
    class SqlLogin:
        def apply(self, target: str, value: str) -> None: ...
        def test(self, target: str, value: str) -> None: ...

List the module in `rotation.hook_modules` so the app imports it.

Optional methods (detected with getattr, so hooks written before them keep working):

    def rollback(self, target: str, value: str) -> None: ...
        # The run failed after `apply` was called and the value was never promoted: make the
        # provider forget `value` (idempotent; may be called for a value it never took).
        # Absent: the rollback is skipped and audited as such.

A module in `rotation.hook_modules` that fails to import breaks only the rules whose hook it
would have registered: the failure is remembered and named when such a rule runs.
"""

from __future__ import annotations

import importlib
import secrets
import string
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from pitcrew.registry import Registry
from pitcrew.rotation.policy import PasswordPolicy


class CredentialHook(Protocol):
    def apply(self, target: str, value: str) -> None: ...

    def test(self, target: str, value: str) -> None: ...


class RollbackHook(Protocol):
    """A hook that can also undo an applied value (the optional `rollback` method)."""

    def rollback(self, target: str, value: str) -> None: ...


HOOKS: Registry[CredentialHook] = Registry("credential hook")
_IMPORT_ERRORS: dict[str, str] = {}  # module -> why it failed to import (no value, a type+text)
T = TypeVar("T")


def credential_hook(name: str) -> Callable[[T], T]:
    """Register a hook (a class, instantiated with no arguments, or an instance) by name."""
    return HOOKS.register(name, _instance)


def _instance(obj: Any) -> CredentialHook:
    hook: CredentialHook = obj() if isinstance(obj, type) else obj
    return hook


def register_hook(name: str, hook: CredentialHook) -> None:
    HOOKS.add(name, hook)


def unregister_hook(name: str) -> None:
    HOOKS.remove(name)


def import_problem(module: str) -> str | None:
    """Why `module` cannot be imported (None when it imports)."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # anything a user's module raises at import
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return None


def load_hook_modules(modules: Iterable[str]) -> dict[str, str]:
    """Import every module; never raises. Returns (and remembers) module -> import error, so a
    broken module only fails the rules that use a hook it would have registered."""
    failed: dict[str, str] = {}
    for module in modules:
        problem = import_problem(module)
        if problem is None:
            _IMPORT_ERRORS.pop(module, None)
        else:
            failed[module] = _IMPORT_ERRORS[module] = problem
    return failed


def hook_names() -> list[str]:
    return HOOKS.names()


def get_hook(name: str) -> CredentialHook:
    found = HOOKS.find(name)
    if found is None:
        known = ", ".join(HOOKS.names()) or "none"
        broken = "; ".join(f"{m} failed to import ({e})" for m, e in sorted(_IMPORT_ERRORS.items()))
        raise LookupError(
            f"no credential hook named {name!r} is registered (registered: {known}); list its "
            "module in rotation.hook_modules" + (f". Note: {broken}" if broken else "")
        )
    return found


def rollback_of(hook: CredentialHook) -> RollbackHook | None:
    """The hook's optional rollback, or None when it has none."""
    return hook if callable(getattr(hook, "rollback", None)) else None  # type: ignore[return-value]


def generate_password(policy: PasswordPolicy) -> str:
    """A password meeting the policy's minimum counts, from the OS's CSPRNG, shuffled."""
    classes = [
        (string.ascii_lowercase, policy.lowercase),
        (string.ascii_uppercase, policy.uppercase),
        (string.digits, policy.digits),
        (policy.symbol_set, policy.symbols),
    ]
    alphabet = "".join(chars for chars, minimum in classes if minimum > 0) or (
        string.ascii_letters + string.digits
    )
    chars = [secrets.choice(pool) for pool, minimum in classes for _ in range(minimum)]
    chars += [secrets.choice(alphabet) for _ in range(policy.length - len(chars))]
    # Fisher-Yates with the CSPRNG, so the required characters are not always first.
    for i in range(len(chars) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


def meets(policy: PasswordPolicy, value: str) -> bool:
    counts = (
        sum(c in string.ascii_lowercase for c in value) >= policy.lowercase,
        sum(c in string.ascii_uppercase for c in value) >= policy.uppercase,
        sum(c in string.digits for c in value) >= policy.digits,
        sum(c in policy.symbol_set for c in value) >= policy.symbols,
    )
    allowed = set(string.ascii_letters + string.digits + policy.symbol_set)
    return len(value) == policy.length and all(counts) and set(value) <= allowed
