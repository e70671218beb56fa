"""The function app's contract: the exact functions and triggers the platform will index.

Infra (Event Grid subscriptions, alert webhooks) and operators depend on these names; a change
here is a breaking change and must be deliberate.
"""

from __future__ import annotations

import subprocess
import sys

import function_app

EXPECTED = {
    "on_keyvault_event": ("eventGridTrigger", {}),
    "receive_events": ("httpTrigger", {"route": "events", "methods": {"POST", "OPTIONS"},
                                       "authLevel": "function"}),
    "receive_alert": ("httpTrigger", {"route": "alerts", "methods": {"POST"},
                                      "authLevel": "function"}),
    "list_rejected_events": ("httpTrigger", {"route": "events/rejected", "methods": {"GET"},
                                             "authLevel": "anonymous"}),
    "retry_outbox": ("timerTrigger", {"schedule": "0 */1 * * * *"}),
    "health": ("httpTrigger", {"route": "health", "methods": {"GET"}, "authLevel": "anonymous"}),
    "list_audit": ("httpTrigger", {"route": "audit", "methods": {"GET"},
                                   "authLevel": "anonymous"}),
    # dead letters (pitcrew/deadletter)
    "on_servicebus_deadletter": ("eventGridTrigger", {}),
    "scan_deadletters": ("timerTrigger", {"schedule": "0 */1 * * * *"}),
    "purge_failed_messages": ("timerTrigger", {"schedule": "0 17 3 * * *"}),
    "resume_replay_jobs": ("timerTrigger", {"schedule": "10,40 * * * * *"}),
    "run_replay_job": ("queueTrigger", {}),
    "run_scan_job": ("queueTrigger", {}),
    "dlq_show_scan": ("httpTrigger", {"route": "dlq/scans/{scan}", "methods": {"GET"},
                                      "authLevel": "anonymous"}),
    "dlq_purge": ("httpTrigger", {"route": "dlq/purge", "methods": {"POST"},
                                  "authLevel": "anonymous"}),
    "dlq_list_groups": ("httpTrigger", {"route": "dlq/groups", "methods": {"GET"},
                                        "authLevel": "anonymous"}),
    "dlq_show_group": ("httpTrigger", {"route": "dlq/groups/{group}", "methods": {"GET"},
                                       "authLevel": "anonymous"}),
    "dlq_show_message": ("httpTrigger", {"route": "dlq/messages/{message}", "methods": {"GET"},
                                         "authLevel": "anonymous"}),
    "dlq_edit_message": ("httpTrigger", {"route": "dlq/messages/{message}/edit",
                                         "methods": {"POST"}, "authLevel": "anonymous"}),
    "dlq_archive": ("httpTrigger", {"route": "dlq/archive", "methods": {"POST"},
                                    "authLevel": "anonymous"}),
    "dlq_scan": ("httpTrigger", {"route": "dlq/scan", "methods": {"POST"},
                                 "authLevel": "anonymous"}),
    "dlq_replays": ("httpTrigger", {"route": "dlq/replays", "methods": {"GET", "POST"},
                                    "authLevel": "anonymous"}),
    "dlq_show_replay": ("httpTrigger", {"route": "dlq/replays/{job}", "methods": {"GET"},
                                        "authLevel": "anonymous"}),
    "dlq_control_replay": ("httpTrigger", {"route": "dlq/replays/{job}/{action}",
                                           "methods": {"POST"}, "authLevel": "anonymous"}),
    "request_rotation": ("httpTrigger", {"route": "rotations", "methods": {"POST"},
                                         "authLevel": "anonymous"}),
    "list_rotations": ("httpTrigger", {"route": "rotations", "methods": {"GET"},
                                       "authLevel": "anonymous"}),
    "advance_rotations": ("timerTrigger", {"schedule": "0 * * * * *"}),
    # alerting (pitcrew/alerting)
    "flush_alert_group": ("queueTrigger", {}),
    "sweep_alert_groups": ("timerTrigger", {"schedule": "15 */1 * * * *"}),
    "list_alerts": ("httpTrigger", {"route": "alerts", "methods": {"GET"},
                                    "authLevel": "anonymous"}),
    "silences": ("httpTrigger", {"route": "silences", "methods": {"GET", "POST"},
                                 "authLevel": "anonymous"}),
    "show_silence": ("httpTrigger", {"route": "silences/{silence}", "methods": {"GET"},
                                     "authLevel": "anonymous"}),
    "expire_silence": ("httpTrigger", {"route": "silences/{silence}", "methods": {"DELETE"},
                                       "authLevel": "anonymous"}),
    "list_notifications": ("httpTrigger", {"route": "notifications", "methods": {"GET"},
                                           "authLevel": "anonymous"}),
    "retry_notification": ("httpTrigger", {"route": "notifications/{notification}/retry",
                                           "methods": {"POST"}, "authLevel": "anonymous"}),
    # expiry sweep (pitcrew/housekeeping: expiry, keys, certificates, hygiene)
    "sweep_expiry": ("timerTrigger", {"schedule": "0 7 * * * *"}),
    "list_expiry": ("httpTrigger", {"route": "expiry", "methods": {"GET"},
                                    "authLevel": "anonymous"}),
    "request_expiry_sweep": ("httpTrigger", {"route": "expiry/sweep", "methods": {"POST"},
                                             "authLevel": "anonymous"}),
    # quota and capacity (pitcrew/quota)
    "scan_quotas": ("timerTrigger", {"schedule": "0 */5 * * * *"}),
    "follow_quota_requests": ("timerTrigger", {"schedule": "0 */5 * * * *"}),
    "quota_list": ("httpTrigger", {"route": "quota", "methods": {"GET"},
                                   "authLevel": "anonymous"}),
    "quota_list_requests": ("httpTrigger", {"route": "quota/requests", "methods": {"GET"},
                                            "authLevel": "anonymous"}),
    "quota_create_request": ("httpTrigger", {"route": "quota/requests", "methods": {"POST"},
                                             "authLevel": "anonymous"}),
    "quota_scan": ("httpTrigger", {"route": "quota/scan", "methods": {"POST"},
                                   "authLevel": "anonymous"}),
    # recovery readiness (pitcrew/housekeeping: backups, drills, images)
    "check_backups": ("timerTrigger", {"schedule": "0 30 5 * * *"}),
    "run_due_drills": ("timerTrigger", {"schedule": "0 0 4 * * *"}),
    "resume_drills": ("timerTrigger", {"schedule": "0 */5 * * * *"}),
    "purge_images": ("timerTrigger", {"schedule": "0 40 2 * * *"}),
    "list_backups": ("httpTrigger", {"route": "backups", "methods": {"GET"},
                                     "authLevel": "anonymous"}),
    "list_drills": ("httpTrigger", {"route": "drills", "methods": {"GET"},
                                    "authLevel": "anonymous"}),
    "run_drill": ("httpTrigger", {"route": "drills/{name}/run", "methods": {"POST"},
                                  "authLevel": "anonymous"}),
    "images_purge": ("httpTrigger", {"route": "images/purge", "methods": {"POST"},
                                     "authLevel": "anonymous"}),
    # the operator console (pitcrew/console)
    "console_index": ("httpTrigger", {"route": "console", "methods": {"GET"},
                                      "authLevel": "anonymous"}),
    "console_asset": ("httpTrigger", {"route": "console/{asset}", "methods": {"GET"},
                                      "authLevel": "anonymous"}),
    "me": ("httpTrigger", {"route": "me", "methods": {"GET"}, "authLevel": "anonymous"}),
}


def _trigger(fn: object) -> dict[str, object]:
    binding = fn.get_trigger()  # type: ignore[attr-defined]
    raw = binding.get_dict_repr()
    out: dict[str, object] = {"type": raw["type"]}
    for key in ("route", "schedule"):
        if key in raw:
            out[key] = raw[key]
    if "methods" in raw:
        out["methods"] = {str(getattr(m, "value", m)) for m in raw["methods"]}
    if "authLevel" in raw:
        out["authLevel"] = str(getattr(raw["authLevel"], "value", raw["authLevel"]))
    return out


def test_exact_functions_and_triggers() -> None:
    # azure-functions remembers the names it indexed (another test's host may have indexed
    # this app already) and would call every function a duplicate: forget them first.
    function_app.app.functions_bindings = None  # type: ignore[attr-defined]
    functions = {f.get_function_name(): _trigger(f) for f in function_app.app.get_functions()}
    assert set(functions) == set(EXPECTED)
    for name, (trigger_type, expected) in EXPECTED.items():
        actual = functions[name]
        assert actual["type"] == trigger_type, name
        for key, value in expected.items():
            assert actual[key] == value, (name, key)


def test_indexing_imports_no_azure_sdk_and_no_engine_dependencies() -> None:
    """Cold start is a feature: indexing must not import the SDKs or heavy libraries."""
    code = (
        "import sys, function_app; function_app.app.get_functions();"
        "heavy = [m for m in sys.modules if m.startswith(('azure.identity', 'azure.data',"
        " 'azure.storage', 'azure.keyvault', 'azure.eventgrid', 'azure.servicebus',"
        " 'azure.mgmt', 'azure.monitor', 'pydantic', 'yaml', 'httpx'))];"
        "print(','.join(sorted(heavy)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""


def test_the_binding_objects_become_one_binding_event_in_their_own_schema() -> None:
    import azure.functions as func

    from functions._eventgrid import binding_event
    from pitcrew.events import BindingEvent, event_from_binding

    data = {"VaultName": "sample-kv", "ObjectType": "Secret", "ObjectName": "db-password"}
    grid = binding_event(func.EventGridEvent(
        id="g-1", data=data, topic="/vaults/sample-kv", subject="db-password",
        event_type="Microsoft.KeyVault.SecretNearExpiry", event_time=None, data_version="1",
    ))
    assert grid == BindingEvent(
        id="g-1", event_type="Microsoft.KeyVault.SecretNearExpiry", subject="db-password",
        topic="/vaults/sample-kv", data=data, data_version="1", schema="eventgrid",
    )
    cloud = binding_event(func.CloudEvent(
        id="c-1", source="/vaults/sample-kv", type="Microsoft.KeyVault.SecretNearExpiry",
        specversion="1.0", data=data, subject="db-password",
    ))
    assert cloud.schema == "cloudevents" and cloud.source == "/vaults/sample-kv"
    assert cloud.topic is None and cloud.id == "c-1"
    parsed = event_from_binding(cloud)
    assert parsed.schema == "cloudevents" and parsed.source == "/vaults/sample-kv"
