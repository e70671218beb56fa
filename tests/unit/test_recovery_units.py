"""Recovery readiness units: the backup-jobs query's shape, the policy's checks, the purge's
selection."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from pitcrew.azure.loganalytics import COLUMNS, backup_jobs_query
from pitcrew.errors import PolicyInvalid
from pitcrew.housekeeping.images import select
from pitcrew.housekeeping.recovery_policy import RegistryRule
from pitcrew.housekeeping.recovery_ports import Manifest
from pitcrew.policy import parse_policy

# Columns of Azure Backup's resource-specific AddonAzureBackupJobs table the query may use.
ADDON_AZURE_BACKUP_JOBS = {"TimeGenerated", "JobOperation", "JobStatus", "JobStartDateTime",
                           "JobFailureCode", "BackupItemUniqueId", "JobDurationInSecs",
                           "BackupManagementType", "ResourceId", "JobUniqueId"}
HEAD = "version: 1\nchannels: {a: {type: webhook, url: 'https://x.example/h'}}\n" \
       "routes: [{name: r, channels: [a]}]\n"


def test_the_backup_jobs_query_reads_the_resource_specific_table_and_projects_what_we_parse(
) -> None:
    query = backup_jobs_query()
    code = "\n".join(line.split("//", 1)[0] for line in query.splitlines())
    assert code.strip().startswith("AddonAzureBackupJobs")
    projected = re.search(r"\|\s*project\s+(.+)$", code.strip(), re.S)
    assert projected is not None
    names = [part.split("=")[0].strip() for part in projected.group(1).split(",")]
    assert tuple(names) == COLUMNS
    used = set(re.findall(r"\b(Job[A-Za-z]+|BackupItemUniqueId|TimeGenerated)\b", code))
    assert used <= ADDON_AZURE_BACKUP_JOBS | {"JobStart"}, used - ADDON_AZURE_BACKUP_JOBS
    assert "ago(" not in code  # the time range is the caller's timespan, not hard-coded


@pytest.mark.parametrize(("section", "problem"), [
    ("recovery: {backups: {cosmos: [{account: /subscriptions/x/resourceGroups/r/providers/"
     "Microsoft.Storage/storageAccounts/abc}]}}", "not a Cosmos DB account"),
    ("recovery: {backups: {jobs: {workspace_id: nope}}}", "GUID"),
    ("recovery: {images: {registries: [{login_server: acr.azurecr.io, repositories: [a], "
     "protect: ['(']}]}}", "regular expression"),
    ("recovery: {drills: [{name: a, account: /subscriptions/x/resourceGroups/r/providers/"
     "Microsoft.DocumentDB/databaseAccounts/abc}, {name: a, account: /subscriptions/x/"
     "resourceGroups/r/providers/Microsoft.DocumentDB/databaseAccounts/abc}]}", "twice"),
    ("recovery: {backups: {storage: [{account: /subscriptions/x/resourceGroups/r/providers/"
     "Microsoft.Storage/storageAccounts/abc, soft_delete_days: 7, "
     "point_in_time_restore_days: 7}]}}", "shorter"),
])
def test_policy_names_what_is_wrong_in_recovery(section: str, problem: str) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(HEAD + section + "\n")
    assert problem in str(caught.value)


def test_the_purge_keeps_newest_in_use_locked_protected_and_recent() -> None:
    now = datetime.now(UTC)
    rule = RegistryRule(login_server="acrx1.azurecr.io", repositories=["api"], keep_last=1,
                        older_than_days=30, protect=[r"^v\d+$"])

    def m(digest: str, days: float, *tags: str, locked: bool = False) -> Manifest:
        return Manifest(digest, tags, 10, now - timedelta(days=days), can_delete=not locked,
                        can_write=not locked)

    chosen, kept = select(rule, "api", [
        m("d-new", 0, "n"), m("d-recent", 5, "r"), m("d-use", 60, "u"),
        m("d-lock", 61, "l", locked=True), m("d-v1", 62, "v1"), m("d-old", 63, "o"),
        m("d-untagged", 64)], {"d-use"}, now=now)
    assert [c.digest for c in chosen] == ["d-old", "d-untagged"]
    assert kept == {"newest": 1, "recent": 1, "in-use": 1, "locked": 1, "protected-tag": 1}


def test_request_bodies_name_the_field_pydantic_refuses() -> None:
    from pitcrew.errors import InvalidInput
    from pitcrew.housekeeping.recovery_api import DrillRunRequest, PurgeImagesRequest
    from pitcrew.http.models import PurgeRequest

    assert PurgeImagesRequest.from_body(b" ").dry_run is True
    assert DrillRunRequest.from_body(b'{"rtoMinutes": 5}').rto_minutes == 5
    for model, body, field in (
        (PurgeImagesRequest, b'{"registry": 5}', "registry"),
        (DrillRunRequest, b'{"rtoMinutes": -1}', "rtoMinutes"),
        (DrillRunRequest, b"[1]", "body"),
        (PurgeRequest, b'{"group": "x"}', "group"),
        (PurgeRequest, b"{}", "body"),
    ):
        with pytest.raises(InvalidInput) as caught:
            model.from_body(body)
        assert caught.value.field == field, (model, body)
