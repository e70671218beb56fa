"""What rotation notifications say: names, versions, steps and what to do. Never a value."""

from __future__ import annotations

from typing import Any

from pitcrew.notify.model import Action, Notification, Severity, Status, notice
from pitcrew.rotation import consumers


def _run_notice(run_id: str, data: dict[str, Any], outcome: str, severity: Severity,
                status: Status, *, title: str, summary: str, facts: dict[str, str],
                actions: tuple[Action, ...]) -> Notification:
    """What a rotation run tells, per outcome (`succeeded`, `failed`, `planned`). Every outcome
    of one secret shares its dedup key and its vault/secret labels, so a success resolves the
    failure's group."""
    vault, secret = str(data["vault"]), str(data["secret"])
    # One notice per attempt of the run: a retried or resumed run that fails again is told
    # again, while the same attempt finishing twice (a crash, a second instance) is told once.
    attempt = int(data.get("retries") or 0)
    return notice(
        "rotation", f"rotation-{outcome}", severity, status=status,
        id=f"rotation:{run_id}:{outcome}" + (f":retry{attempt}" if attempt else ""),
        dedup_key=f"rotation:{vault}/{secret}",
        title=title, summary=summary, correlation_id=run_id, facts=facts, actions=actions,
        labels={"vault": vault, "secret": secret},
    )


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
    return _run_notice(
        run_id, data, "succeeded", "info", "resolved",
        title=f"Secret {data['secret']} in vault {data['vault']} rotated",
        summary=(
            f"pitcrew rotated {name}: version {data.get('new_version')}{key} was tested against "
            f"the provider and promoted; version {data.get('trigger_version')} stays valid until "
            f"the next rotation. {_consumers_told(data)}"
        ),
        facts=_facts(data),
        actions=(Action(label="Inspect the run", command="pitcrew rotations"),),
    )


def _consumers_told(data: dict[str, Any]) -> str:
    """What consumers were really told: only what the run recorded as done."""
    told = []
    if data.get("published"):
        told.append("pitcrew.SecretRotated was published")
    refreshed = data.get("refreshed") or []
    if refreshed:
        told.append(f"the Key Vault references of {len(refreshed)} site(s) were refreshed")
    if not told:
        return ("No consumer was told (no event topic is configured and no consumer site is "
                "listed): consumers read the new version when they next read the secret.")
    return "Consumers were told: " + "; ".join(told) + "."


def failed(run_id: str, data: dict[str, Any], reason: str, runbook: str | None) -> Notification:
    """A run that ended failed. Before promotion nothing consumers read changed; after it (a
    `new_version` recorded) the new version is the latest, and what is left undone is said,
    with `pitcrew rotate`, which resumes the run at the step that failed."""
    name = f"{data['vault']}/{data['secret']}"
    step = data.get("failed_step") or "unknown"
    promoted = data.get("new_version")
    actions = []
    if runbook:
        actions.append(Action(label="Follow the runbook", url=runbook))
    if promoted:
        actions.append(Action(label=f"Resume the run at step {step} once fixed",
                              command=f"pitcrew rotate {name}"))
        summary = (
            f"pitcrew rotated {name} only in part: {reason} Version {promoted} was promoted "
            f"and is the latest, so whoever reads the secret now gets it. "
            f"{_partly_told(data)} Once the cause is fixed, `pitcrew rotate {name}` resumes "
            f"this run at step {step} (it does not start another rotation)."
        )
    elif data.get("promotion_unknown"):
        actions.append(Action(label="Resume or retry the rotation once fixed",
                              command=f"pitcrew rotate {name}"))
        summary = (
            f"pitcrew could not rotate {name}: {reason} Whether Key Vault wrote the new version "
            f"could not be read back: the latest version of {name} is the new one if its "
            f"pitcrew-run tag is {run_id}. Once the cause is fixed, `pitcrew rotate {name}` "
            "resumes this run if it was written and rotates again if not."
        )
    else:
        actions.append(Action(label="Retry the rotation once fixed",
                              command=f"pitcrew rotate {name}"))
        summary = (
            f"pitcrew could not rotate {name}: {reason} The current version "
            f"{data.get('trigger_version')} is still the one consumers use and was not changed; "
            "it still expires as scheduled, so a person must act."
        )
    actions.append(Action(label="Inspect the run", command="pitcrew rotations"))
    return _run_notice(
        run_id, data, "failed", "critical", "firing",
        title=f"Rotation of {data['secret']} in vault {data['vault']} failed at step {step}"
        + (f" after promoting version {promoted}" if promoted else ""),
        summary=summary,
        facts={**_facts(data), "Reason": reason, "Attempts": str(data.get("attempts", 0))},
        actions=tuple(actions),
    )


def _partly_told(data: dict[str, Any]) -> str:
    """What a run that failed after promotion did and did not do for consumers: only what it
    recorded as done counts as done."""
    sites = consumers.consumers_of(data)
    refreshed = [str(s) for s in data.get("refreshed") or []]
    restarted = [str(s) for s in data.get("restarted") or []]
    told = []
    if data.get("published"):
        told.append("pitcrew.SecretRotated was published")
    if refreshed:
        told.append(f"the Key Vault references of site(s) {', '.join(refreshed)} were "
                    "refreshed")
    parts = [("Consumers were told: " + "; ".join(told) + ".") if told else
             "No consumer was told yet."]
    if not data.get("published") and data.get("failed_step") in ("promote", "refresh"):
        parts.append("pitcrew.SecretRotated was not published (when an event topic is "
                     "configured, it is on resuming).")
    missed = [site for site, _ in sites if site not in refreshed]
    if missed:
        parts.append(f"The Key Vault references of site(s) {', '.join(missed)} were not "
                     "refreshed: they may still read the previous version.")
    unrestarted = [site for site, restart in sites if restart and site not in restarted]
    if unrestarted:
        parts.append(f"Site(s) {', '.join(unrestarted)} were not restarted.")
    step = data.get("failed_step")
    if step in ("settle", "first") and data.get("both"):
        parts.append(f"The {data.get('holds') or 'other'} key that version "
                     f"{data.get('trigger_version')} holds was not regenerated: it still "
                     "authenticates.")
    elif step == "retire":
        parts.append("Versions holding a regenerated key may still be enabled.")
    return " ".join(parts)


def planned(run_id: str, plan: dict[str, Any]) -> Notification:
    name = f"{plan['vault']}/{plan['secret']}"
    return _run_notice(
        run_id, plan, "planned", "warning", "firing",
        title=f"Rotation of {plan['secret']} in vault {plan['vault']} planned (mode: plan)",
        summary=(
            f"pitcrew's policy is in plan mode, so it did not rotate {name}. It would: "
            + "; ".join(plan.get("steps", []))
            + ". Rotate it by hand or switch the policy to mode: act."
        ),
        facts={k: str(v) for k, v in plan.items() if k in ("vault", "secret", "version",
                                                           "strategy", "resource", "holds",
                                                           "would_regenerate")},
        actions=(Action(label="Rotate now", command=f"pitcrew rotate {name}"),),
    )


def vault_unavailable(vault: str, secret: str, problem: str, action: str, *, kind: str,
                      correlation_id: str, event_type: str | None = None) -> Notification:
    """pitcrew was told about a secret in a vault it cannot use (unknown, or a role missing)."""
    about = f" ({event_type})" if event_type else ""
    return notice(
        "rotation", "rotation-vault-unavailable", "critical",
        id=f"rotation:vault:{vault.lower()}:{kind}:{correlation_id}",
        dedup_key=f"rotation:vault:{vault.lower()}",
        title=(f"pitcrew cannot use vault {vault}" if kind == "unknown" else
               f"pitcrew lacks access to vault {vault}"),
        summary=(f"pitcrew was asked about secret {secret} in vault {vault}{about} but {problem}. "
                 f"Nothing was rotated. To fix: {action}."),
        correlation_id=correlation_id,
        facts={"Vault": vault, "Secret": secret, "Problem": problem},
        actions=(Action(label="Rotate once fixed", command=f"pitcrew rotate {vault}/{secret}"),),
        labels={"vault": vault, "secret": secret},
    )
