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
"""

from __future__ import annotations

import importlib
import secrets
import string
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from pitcrew.rotation.policy import PasswordPolicy


class CredentialHook(Protocol):
    def apply(self, target: str, value: str) -> None: ...

    def test(self, target: str, value: str) -> None: ...


_HOOKS: dict[str, CredentialHook] = {}
T = TypeVar("T")


def credential_hook(name: str) -> Callable[[T], T]:
    """Register a hook (a class, instantiated with no arguments, or an instance) by name."""

    def register(obj: T) -> T:
        _HOOKS[name] = obj() if isinstance(obj, type) else obj  # type: ignore[assignment]
        return obj

    return register


def register_hook(name: str, hook: CredentialHook) -> None:
    _HOOKS[name] = hook


def unregister_hook(name: str) -> None:
    _HOOKS.pop(name, None)


def load_hook_modules(modules: Iterable[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def get_hook(name: str) -> CredentialHook:
    try:
        return _HOOKS[name]
    except KeyError:
        known = ", ".join(sorted(_HOOKS)) or "none"
        raise LookupError(
            f"no credential hook named {name!r} is registered (registered: {known}); list its "
            "module in rotation.hook_modules"
        ) from None


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
