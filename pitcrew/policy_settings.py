"""The app settings a policy names, checked in an environment the way run time reads them
(`pitcrew policy validate --settings`).

Run time reads these when it uses them: a receiver's URL, key or password at each delivery, a
dead-letter source's connection at each scan, a replay target's at each replay, the cloud's
Service Bus suffix whenever a namespace is completed. A missing or malformed one fails only that
delivery, scan or replay (a replay target is dropped with a log line), so the policy still
loads; this names each one up front, by the policy's field and the setting, never its value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from pitcrew.deadletter.model import parse_target
from pitcrew.deadletter.policy import ServiceBusSource, StorageQueueSource
from pitcrew.errors import ConfigurationError
from pitcrew.policy import Policy
from pitcrew.runtime import Settings, connection_setting, servicebus_fqdn, storage_account_url


def settings_problems(policy: Policy, env: Mapping[str, str]) -> list[str]:
    """Every app setting `policy` names that `env` does not hold as run time needs it, as
    `<field path>: <the error run time would raise>`."""
    try:
        suffix = Settings.from_env(env).servicebus_suffix
    except ConfigurationError as exc:
        # Run time cannot start with it either; the namespaces cannot be checked without it.
        return [str(exc)]
    problems = [
        f"receivers.{name}.{field}: {problem}"
        for name, receiver in policy.receivers.items()
        for field, problem in receiver.settings_problems(env).items()
    ]
    dl = policy.deadletter
    for i, source in enumerate(dl.sources):
        where = f"deadletter.sources[{i}]"
        if isinstance(source, ServiceBusSource):
            problems += _failing(f"{where}.namespace",
                                 partial(servicebus_fqdn, source.namespace, suffix))
            if source.connection:
                problems += _failing(f"{where}.connection",
                                     partial(connection_setting, source.connection, env))
        else:
            kind = "queue" if isinstance(source, StorageQueueSource) else "blob"
            problems += _failing(f"{where}.connection",
                                 partial(_storage, source.connection, kind, env))
        if source.replay_to:
            problems += _target_problems(f"{where}.replay_to", source.replay_to, env, suffix)
    for i, spec in enumerate(dl.replay.targets):
        problems += _target_problems(f"deadletter.replay.targets[{i}]", spec, env, suffix)
    return problems


def _target_problems(where: str, spec: str, env: Mapping[str, str], suffix: str) -> list[str]:
    """A replay target as pitcrew.azure.deadletter builds its sender (the schema already
    checked the spec's shape, so it parses)."""
    target = parse_target(spec)
    if target.kind == "queue":
        return _failing(where, partial(_storage, str(target.connection), "queue", env))
    problems = _failing(where, partial(servicebus_fqdn, target.namespace, suffix))
    if target.connection:
        problems += _failing(where, partial(connection_setting, target.connection, env))
    return problems


def _storage(connection: str, kind: str, env: Mapping[str, str]) -> None:
    """As Runtime.storage_service: a connection string in `<connection>`, else its
    identity-based endpoint settings."""
    if not env.get(connection, "").strip():
        storage_account_url(connection, kind, env)


def _failing(where: str, check: Callable[[], object]) -> list[str]:
    try:
        check()
    except ConfigurationError as exc:
        return [f"{where}: {exc}"]
    return []
