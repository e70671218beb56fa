"""StateStore (pitcrew.ports) over two tables: `<prefix>claims` and `<prefix>runs`.

A claim is a row inserted only if absent, so of N concurrent claimants exactly one inserts it;
an expired lease is taken over with an ETag-conditional update. A run is saved only if its
ETag still matches (`StaleRun` otherwise).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pitcrew import state
from pitcrew.azure.tables import transactions
from pitcrew.azure.tables.keys import printable, row_etag, table_key
from pitcrew.azure.tables.paging import keyed_page, query_page, where
from pitcrew.azure.tables.payload import pack, unpack
from pitcrew.errors import RetryLater
from pitcrew.http.paging import Page
from pitcrew.state import Claim, ClaimStatus, RunRecord, StaleRun

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)

_INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


class TableStateStore:
    """StateStore over two tables: `<prefix>claims` and `<prefix>runs`."""

    def __init__(self, claims: TableClient, runs: TableClient) -> None:
        self._claims = claims
        self._runs = runs

    # ------------------------------------------------------------------ claims

    def claim(
        self,
        scope: str,
        key: str,
        *,
        lease_seconds: float = 300.0,
        label: Mapping[str, str] | None = None,
    ) -> Claim | None:
        """Win the right to act on `key` once, or return None when it is already done.

        `label` adds readable columns to the claim row (an event's id and source when `key` is
        a digest of them); each value is cut to 1,000 characters.

        Raises RetryLater while another instance holds a live lease: the platform retries and
        nothing is lost if that instance dies.
        """
        from azure.core import MatchConditions  # SDK on first use (cold start)
        from azure.core.exceptions import (
            HttpResponseError,
            ResourceExistsError,
            ResourceModifiedError,
        )

        now = state.utcnow()
        entity = _claim_entity(scope, key, now, lease_seconds, label)
        partition, row = entity["PartitionKey"], entity["RowKey"]
        try:
            meta = self._claims.create_entity(entity)
            return Claim(scope=scope, key=key, etag=meta["etag"], attempt=1)
        except ResourceExistsError:
            pass
        current = self._claims.get_entity(partition, row)
        if current.get("Status") == "done":
            return None
        lease_until = current.get("LeaseUntil")
        if isinstance(lease_until, datetime) and lease_until > now:
            raise RetryLater(f"{scope} {key!r} is being handled by another instance")
        attempt = int(current.get("Attempt", 1)) + 1
        entity["Attempt"] = attempt
        try:
            meta = self._claims.update_entity(
                entity,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, HttpResponseError) as exc:
            if isinstance(exc, HttpResponseError) and exc.status_code != 412:
                raise
            raise RetryLater(f"{scope} {key!r} was taken over by another instance") from None
        log.warning("took over %s %r after an expired lease (attempt %d)", scope, key, attempt)
        return Claim(scope=scope, key=key, etag=meta["etag"], attempt=attempt, taken_over=True)

    def claim_new(
        self,
        scope: str,
        items: Sequence[tuple[str, Mapping[str, str] | None]],
        *,
        lease_seconds: float = 300.0,
    ) -> dict[str, Claim]:
        """Claim many keys no one has claimed yet, up to 100 in one round trip: the claims
        won by inserting their rows. A key missing from the answer exists already (done,
        held, or expired) and must go through `claim`, which knows what to do with it."""
        now = state.utcnow()
        keys = {table_key(key): key for key, _ in items}
        rows = [_claim_entity(scope, key, now, lease_seconds, label)
                for key, label in dict(items).items()]
        won: dict[str, Claim] = {}
        for entity, meta in transactions.insert_new(self._claims, rows):
            key = keys[entity["RowKey"]]
            won[key] = Claim(scope=scope, key=key, etag=meta["etag"], attempt=1)
        return won

    def complete_many(self, done: Sequence[tuple[Claim, str]]) -> None:
        """`complete` each claim, up to 100 in one round trip (ETag-conditional each); a
        transaction that fails (a lease taken over meanwhile) is completed row by row, so
        only the taken-over claim is left to the instance that took it."""
        from azure.core import MatchConditions  # SDK on first use (cold start)
        from azure.data.tables import TableTransactionError, UpdateMode  # SDK on first use

        now = state.utcnow()
        by_row: dict[tuple[str, str], Claim] = {}
        operations: list[transactions.Operation] = []
        for claim, outcome in done:
            entity = {"PartitionKey": table_key(claim.scope), "RowKey": table_key(claim.key),
                      **_done(outcome, now)}
            by_row[(entity["PartitionKey"], entity["RowKey"])] = claim
            operations.append(("update", entity, {
                "mode": UpdateMode.MERGE, "etag": claim.etag,
                "match_condition": MatchConditions.IfNotModified}))
        for chunk in transactions.chunked(operations):
            claims = [by_row[(op[1]["PartitionKey"], op[1]["RowKey"])] for op in chunk]
            try:
                results = transactions.submit(self._claims, chunk)
            except TableTransactionError:
                for claim, (_, entity, _) in zip(claims, chunk, strict=True):
                    self._finish(claim, {k: v for k, v in entity.items()
                                         if k not in ("PartitionKey", "RowKey")})
                continue
            for claim, meta in zip(claims, results, strict=True):
                claim.etag = meta["etag"]

    def complete(self, claim: Claim, *, outcome: str) -> None:
        self._finish(claim, _done(outcome, state.utcnow()))

    def release(self, claim: Claim, *, reason: str) -> None:
        """Give the claim back (the effect failed): the platform's retry may claim it at once."""
        self._finish(claim, {"LeaseUntil": state.utcnow(), "LastError": reason[:500]})

    def _finish(self, claim: Claim, changes: Mapping[str, Any]) -> None:
        from azure.core import MatchConditions  # SDK on first use (cold start)
        from azure.core.exceptions import ResourceModifiedError
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": table_key(claim.scope), "RowKey": table_key(claim.key), **changes}
        try:
            meta = self._claims.update_entity(
                entity,
                mode=UpdateMode.MERGE,
                etag=claim.etag,
                match_condition=MatchConditions.IfNotModified,
            )
            claim.etag = meta["etag"]
        except ResourceModifiedError:
            # Our lease expired and another instance took over: it owns the outcome now.
            log.error(
                "claim %s %r changed under us; the instance that took over owns it",
                claim.scope,
                claim.key,
            )

    def claim_status(self, scope: str, key: str) -> ClaimStatus | None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        try:
            row = self._claims.get_entity(table_key(scope), table_key(key))
        except ResourceNotFoundError:
            return None
        status: ClaimStatus = row["Status"]
        return status

    # ------------------------------------------------------------------ runs

    def create_run(self, run: RunRecord) -> RunRecord | None:
        """Insert a new run; None when a run with that id exists (a duplicate request)."""
        from azure.core.exceptions import ResourceExistsError  # SDK on first use (cold start)

        try:
            meta = self._runs.create_entity(_run_entity(run))
        except ResourceExistsError:
            return None
        run.etag = meta["etag"]
        return run

    def get_run(self, kind: str, run_id: str) -> RunRecord | None:
        from azure.core.exceptions import ResourceNotFoundError  # SDK on first use (cold start)

        try:
            row = self._runs.get_entity(table_key(kind), table_key(run_id))
        except ResourceNotFoundError:
            return None
        return _run_from_entity(row)

    def save_run(self, run: RunRecord) -> RunRecord:
        """Persist the next step, only if nobody advanced the run since it was read."""
        from azure.core import MatchConditions  # SDK on first use (cold start)
        from azure.core.exceptions import ResourceModifiedError
        from azure.data.tables import UpdateMode

        run.updated_at = state.utcnow()
        try:
            meta = self._runs.update_entity(
                _run_entity(run),
                mode=UpdateMode.REPLACE,
                etag=run.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            raise StaleRun(
                f"run {run.kind}/{run.run_id} was advanced by another instance"
            ) from None
        run.etag = meta["etag"]
        return run

    def list_runs(self, kind: str, *, status: str | None = None) -> Iterator[RunRecord]:
        query, params = _runs_of(kind, status)
        for row in self._runs.query_entities(query, parameters=params):
            yield _run_from_entity(row)

    def runs_page(
        self, kind: str, *, limit: int, status: str | None = None,
        run_ids: tuple[str, str] | None = None, continuation: Mapping[str, Any] | None = None,
    ) -> Page[RunRecord]:
        """One page of a kind's runs in id order, optionally of one status and with ids in
        [run_ids[0], run_ids[1]); the continuation is Table storage's own position."""
        query, params = _runs_of(kind, status)
        if run_ids is not None:
            query += " and RunId ge @lo and RunId lt @hi"
            params.update(lo=run_ids[0], hi=run_ids[1])
        page = query_page(self._runs, query, limit=limit, continuation=continuation,
                          parameters=params)
        return page.map(_run_from_entity)

    def runs_between(
        self, kind: str, first: str, last: str, *, limit: int, status: str | None = None,
        after: str | None = None,
    ) -> Page[RunRecord]:
        """One page of the runs whose id lies in [first, last) (ids that start with a time make
        it a time range), in id order, resumed after the id `after`; the continuation is
        `{"after": last id}`."""
        query, params = _runs_of(kind, status)
        query += " and RowKey ge @from and RowKey lt @to"
        params.update({"from": table_key(first), "to": table_key(last)})
        return keyed_page(self._runs, query, params, limit=limit,
                          after=None if after is None else table_key(after),
                          convert=_run_from_entity, key=lambda run: run.run_id)


def _runs_of(kind: str, status: str | None) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"pk": table_key(kind)}
    return where("PartitionKey eq @pk", params, ("Status", "eq", "status", status)), params


def _run_entity(run: RunRecord) -> dict[str, Any]:
    return {
        "PartitionKey": table_key(run.kind),
        "RowKey": table_key(run.run_id),
        "RunId": run.run_id,
        "Step": run.step,
        "Status": run.status,
        **pack("Data", json.dumps(run.data, default=str)),
        "CreatedAt": run.created_at,
        "UpdatedAt": run.updated_at,
    }


def _run_from_entity(row: Any) -> RunRecord:
    return RunRecord(
        kind=row["PartitionKey"],
        run_id=row.get("RunId") or row["RowKey"],
        step=row["Step"],
        status=row["Status"],
        data=json.loads(unpack("Data", row, "{}")),
        created_at=row["CreatedAt"],
        updated_at=row["UpdatedAt"],
        etag=row_etag(row),
    )


def _claim_entity(scope: str, key: str, now: datetime, lease_seconds: float,
                  label: Mapping[str, str] | None) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": table_key(scope),
        "RowKey": table_key(key),
        "Key": printable(key)[:2000],
        "Status": "claimed",
        "Owner": _INSTANCE,
        "ClaimedAt": now,
        "LeaseUntil": now + timedelta(seconds=lease_seconds),
        "Attempt": 1,
    }
    for column, value in (label or {}).items():
        entity[column] = printable(value)[:1000]
    return entity


def _done(outcome: str, now: datetime) -> dict[str, Any]:
    return {"Status": "done", "Outcome": outcome[:500], "DoneAt": now}
