"""What rotation notifications say: names, versions, steps and what to do. Never a value."""

from __future__ import annotations

from typing import Any

from pitcrew.notify.model import Action, Notification


def _labels(vault: str, secret: str, rule: str = "rotation-failed") -> dict[str, str]:
    """A rotation's labels: the same for its failure and its success, so a success resolves
    the failure's group (severity is the failure's)."""
    return {"kind": "rotation", "alertRule": rule, "severity": "critical", "vault": vault,
            "secret": secret}


def _facts(data: dict[str, Any]) -> dict[str, str]:
    facts = {
        "Vault": str(data.get("vault")),
        "Secret": str(data.get("secret")),
        "Strategy": str(data.get("strategy") or "unknown"),
        "Triggering version": str(data.get("trigger_version") or "unknown"),
    }
    if data.get("resource"):
        facts["Resource"] = str(data["resource"])
    if data.get("regenerate"):
        facts["Key regenerated" if data.get("regenerated") else "Key to regenerate"] = str(
            data["regenerate"]
        )
    if data.get("new_version"):
        facts["New version"] = str(data["new_version"])
    if data.get("requested_by"):
        facts["Requested by"] = str(data["requested_by"])
    return facts


def rotated(run_id: str, data: dict[str, Any]) -> Notification:
    name = f"{data['vault']}/{data['secret']}"
    key = f" (now the {data['regenerate']} key)" if data.get("regenerate") else ""
    return Notification(
        id=f"rotation:{run_id}:succeeded",
        dedup_key=f"rotation:{name}",
        kind="rotation",
        severity="info",
        status="resolved",
        title=f"Secret {data['secret']} in vault {data['vault']} rotated",
        summary=(
            f"pitcrew rotated {name}: version {data.get('new_version')}{key} was tested against "
            f"the provider and promoted; version {data.get('trigger_version')} stays valid until "
            "the next rotation. Consumers were told (pitcrew.SecretRotated)."
        ),
        correlation_id=run_id,
        facts=_facts(data),
        actions=(Action(label="Inspect the run", command="pitcrew rotations"),),
        labels={**_labels(str(data["vault"]), str(data["secret"]), "rotation-succeeded"),
                "severity": "info"},
    )


def failed(run_id: str, data: dict[str, Any], reason: str, runbook: str | None) -> Notification:
    name = f"{data['vault']}/{data['secret']}"
    actions = []
    if runbook:
        actions.append(Action(label="Follow the runbook", url=runbook))
    actions.append(Action(label="Retry the rotation once fixed",
                          command=f"pitcrew rotate {name}"))
    actions.append(Action(label="Inspect the run", command="pitcrew rotations"))
    return Notification(
        id=f"rotation:{run_id}:failed",
        dedup_key=f"rotation:{name}",
        kind="rotation",
        severity="critical",
        status="firing",
        title=f"Rotation of {data['secret']} in vault {data['vault']} failed at step "
        f"{data.get('failed_step') or 'unknown'}",
        summary=(
            f"pitcrew could not rotate {name}: {reason} The current version "
            f"{data.get('trigger_version')} is still the one consumers use and was not changed; "
            "it still expires as scheduled, so a person must act."
        ),
        correlation_id=run_id,
        facts={**_facts(data), "Reason": reason, "Attempts": str(data.get("attempts", 0))},
        actions=tuple(actions),
        labels=_labels(str(data["vault"]), str(data["secret"])),
    )


def planned(run_id: str, plan: dict[str, Any]) -> Notification:
    name = f"{plan['vault']}/{plan['secret']}"
    return Notification(
        id=f"rotation:{run_id}:planned",
        dedup_key=f"rotation:{name}",
        kind="rotation",
        severity="warning",
        status="firing",
        title=f"Rotation of {plan['secret']} in vault {plan['vault']} planned (mode: plan)",
        summary=(
            f"pitcrew's policy is in plan mode, so it did not rotate {name}. It would: "
            + "; ".join(plan.get("steps", []))
            + ". Rotate it by hand or switch the policy to mode: act."
        ),
        correlation_id=run_id,
        facts={k: str(v) for k, v in plan.items() if k in ("vault", "secret", "version",
                                                           "strategy", "resource", "holds",
                                                           "would_regenerate")},
        actions=(Action(label="Rotate now", command=f"pitcrew rotate {name}"),),
        labels={**_labels(str(plan["vault"]), str(plan["secret"]), "rotation-planned"),
                "severity": "warning"},
    )


def vault_unavailable(vault: str, secret: str, problem: str, action: str, *, kind: str,
                      correlation_id: str, event_type: str | None = None) -> Notification:
    """pitcrew was told about a secret in a vault it cannot use (unknown, or a role missing)."""
    about = f" ({event_type})" if event_type else ""
    return Notification(
        id=f"rotation:vault:{vault.lower()}:{kind}:{correlation_id}",
        dedup_key=f"rotation:vault:{vault.lower()}",
        kind="rotation",
        severity="critical",
        status="firing",
        title=(f"pitcrew cannot use vault {vault}" if kind == "unknown" else
               f"pitcrew lacks access to vault {vault}"),
        summary=(f"pitcrew was asked about secret {secret} in vault {vault}{about} but {problem}. "
                 f"Nothing was rotated. To fix: {action}."),
        correlation_id=correlation_id,
        facts={"Vault": vault, "Secret": secret, "Problem": problem},
        actions=(Action(label="Rotate once fixed", command=f"pitcrew rotate {vault}/{secret}"),),
        labels={"kind": "rotation", "alertRule": "rotation-vault-unavailable",
                "severity": "critical", "vault": vault, "secret": secret},
    )
