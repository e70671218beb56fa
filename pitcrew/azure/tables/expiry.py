"""FindingStore (pitcrew.housekeeping.ports) over the `<prefix>expiry` table: one partition per
vault, one row per object (`kind|name`), rewritten by each sweep of that vault."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pitcrew.azure.tables import transactions
from pitcrew.azure.tables.paging import query_page, where
from pitcrew.housekeeping.ports import Finding
from pitcrew.http.paging import Page

if TYPE_CHECKING:
    from azure.data.tables import TableClient

_BATCH = 100  # Table storage's limit on one transaction (same partition)


def _row(finding: Finding) -> dict[str, Any]:
    return {
        "PartitionKey": finding.vault.lower(),
        "RowKey": f"{finding.kind}|{finding.name.lower()}",
        "Vault": finding.vault, "Kind": finding.kind, "Name": finding.name,
        "Class": finding.cls, "Version": finding.version or "",
        "Expires": finding.expires, "Owner": finding.owner, "Action": finding.action[:4000],
        "Problems": json.dumps(finding.problems)[:8000], "Sweep": finding.sweep_id,
        "SweptAt": finding.swept_at,
    }


def _finding(row: Mapping[str, Any]) -> Finding:
    try:
        problems = [str(p) for p in json.loads(row.get("Problems") or "[]")]
    except ValueError:
        problems = []
    expires = row.get("Expires")
    swept = row.get("SweptAt")
    return Finding(
        vault=str(row.get("Vault", "")), kind=row.get("Kind", "secret"),
        name=str(row.get("Name", "")), cls=str(row.get("Class", "")),
        version=str(row.get("Version") or "") or None,
        expires=expires if isinstance(expires, datetime) else None,
        owner=str(row.get("Owner") or ""), action=str(row.get("Action") or ""),
        problems=problems, sweep_id=str(row.get("Sweep") or ""),
        swept_at=swept if isinstance(swept, datetime) else None,
    )


class TableFindingStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def replace(self, vault: str, findings: Iterable[Finding], *, sweep_id: str,
                listed: Collection[str], started: datetime) -> None:
        batch: list[tuple[str, dict[str, Any]]] = []
        found: set[str] = set()
        for finding in findings:
            entity = {k: v for k, v in _row(finding).items() if v is not None}
            found.add(entity["RowKey"])
            batch.append(("upsert", entity))
            if len(batch) == _BATCH:
                transactions.submit(self._table, batch)
                batch = []
        if batch:
            transactions.submit(self._table, batch)
        if not listed:
            return
        stale = self._table.query_entities(
            "PartitionKey eq @p and Sweep ne @s", parameters={"p": vault.lower(), "s": sweep_id},
            select=["PartitionKey", "RowKey", "Kind", "SweptAt"])
        deletes: list[tuple[str, dict[str, Any]]] = []
        for row in stale:
            swept = row.get("SweptAt")
            if (row["RowKey"] in found or row.get("Kind") not in listed
                    or (isinstance(swept, datetime) and swept > started)):
                continue  # found again, not listed this time, or a later sweep's
            deletes.append(("delete", {"PartitionKey": row["PartitionKey"],
                                       "RowKey": row["RowKey"]}))
            if len(deletes) == _BATCH:
                transactions.submit(self._table, deletes)
                deletes = []
        if deletes:
            transactions.submit(self._table, deletes)

    def page(self, *, vault: str | None, cls: str | None, kind: str | None, limit: int,
             continuation: Mapping[str, Any] | None = None) -> Page[Finding]:
        parameters: dict[str, Any] = {}
        query = where("PartitionKey ge ''", parameters,
                      ("PartitionKey", "eq", "vault", vault.lower() if vault else None),
                      ("Class", "eq", "cls", cls), ("Kind", "eq", "kind", kind))
        return query_page(self._table, query, limit=limit, continuation=continuation,
                          parameters=parameters).map(_finding)
