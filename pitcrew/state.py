"""Idempotency claims and run records in Azure Table storage, with ETag concurrency.

A claim is a row inserted only if absent: of N concurrent claimants exactly one inserts it.
The winner holds a lease while it works and marks the claim done when the effect is complete;
a later duplicate sees `done` and stops. A claimant that finds an expired lease (the winner
crashed) takes the claim over with an ETag-conditional update, so again only one proceeds.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote

from pitcrew.errors import RetryLater

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)

ClaimStatus = Literal["claimed", "done"]
_INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


def table_key(value: str) -> str:
    """A PartitionKey/RowKey for any string: Table keys forbid / \\ # ? and control characters.

    Every character outside a safe ASCII set is percent-encoded (UTF-8; an unpaired surrogate,
    which JSON can carry, is encoded as its code unit rather than failing), so any Python
    string maps to a valid key and distinct strings to distinct keys."""
    encoded = quote(value, safe="-_.~:@!$&'()*+,;=", errors="surrogatepass")
    if len(encoded) > 400:
        # Long keys keep a readable head and a digest that keeps them distinct.
        digest = sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{encoded[:300]}~{digest}"
    return encoded


def _printable(value: str) -> str:
    """A string a Table property can hold: unpaired surrogates escaped, nothing dropped."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Claim:
    """A won claim: the holder may perform the side effect, then must `complete` it."""

    scope: str
    key: str
    etag: str
    attempt: int
    taken_over: bool = False


@dataclass
class RunRecord:
    """A persisted state machine run (rotations, replay jobs): the step it reached and its data."""

    kind: str
    run_id: str
    step: str
    status: str
    data: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    etag: str | None = None


class StateStore(Protocol):
    """The port the engine uses for idempotency and run records."""

    def claim(
        self,
        scope: str,
        key: str,
        *,
        lease_seconds: float = ...,
        label: Mapping[str, str] | None = None,
    ) -> Claim | None: ...

    def complete(self, claim: Claim, *, outcome: str) -> None: ...

    def release(self, claim: Claim, *, reason: str) -> None: ...

    def create_run(self, run: RunRecord) -> RunRecord | None: ...

    def get_run(self, kind: str, run_id: str) -> RunRecord | None: ...

    def save_run(self, run: RunRecord) -> RunRecord: ...

    def list_runs(self, kind: str, *, status: str | None = None) -> Iterator[RunRecord]: ...


class StaleRun(RetryLater):
    """Another instance advanced the run first: reload it and retry."""


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
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            HttpResponseError,
            ResourceExistsError,
            ResourceModifiedError,
        )

        now = utcnow()
        partition, row = table_key(scope), table_key(key)
        entity: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": row,
            "Key": _printable(key)[:2000],
            "Status": "claimed",
            "Owner": _INSTANCE,
            "ClaimedAt": now,
            "LeaseUntil": now + timedelta(seconds=lease_seconds),
            "Attempt": 1,
        }
        for column, value in (label or {}).items():
            entity[column] = _printable(value)[:1000]
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

    def complete(self, claim: Claim, *, outcome: str) -> None:
        self._finish(claim, {"Status": "done", "Outcome": outcome[:500], "DoneAt": utcnow()})

    def release(self, claim: Claim, *, reason: str) -> None:
        """Give the claim back (the effect failed): the platform's retry may claim it at once."""
        self._finish(claim, {"LeaseUntil": utcnow(), "LastError": reason[:500]})

    def _finish(self, claim: Claim, changes: Mapping[str, Any]) -> None:
        from azure.core import MatchConditions
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
        from azure.core.exceptions import ResourceNotFoundError

        try:
            row = self._claims.get_entity(table_key(scope), table_key(key))
        except ResourceNotFoundError:
            return None
        status: ClaimStatus = row["Status"]
        return status

    # ------------------------------------------------------------------ runs

    def create_run(self, run: RunRecord) -> RunRecord | None:
        """Insert a new run; None when a run with that id exists (a duplicate request)."""
        from azure.core.exceptions import ResourceExistsError

        try:
            meta = self._runs.create_entity(_run_entity(run))
        except ResourceExistsError:
            return None
        run.etag = meta["etag"]
        return run

    def get_run(self, kind: str, run_id: str) -> RunRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            row = self._runs.get_entity(table_key(kind), table_key(run_id))
        except ResourceNotFoundError:
            return None
        return _run_from_entity(row)

    def save_run(self, run: RunRecord) -> RunRecord:
        """Persist the next step, only if nobody advanced the run since it was read."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError
        from azure.data.tables import UpdateMode

        run.updated_at = utcnow()
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
        query = "PartitionKey eq @pk"
        params: dict[str, Any] = {"pk": table_key(kind)}
        if status is not None:
            query += " and Status eq @status"
            params["status"] = status
        for row in self._runs.query_entities(query, parameters=params):
            yield _run_from_entity(row)


def _run_entity(run: RunRecord) -> dict[str, Any]:
    return {
        "PartitionKey": table_key(run.kind),
        "RowKey": table_key(run.run_id),
        "RunId": run.run_id,
        "Step": run.step,
        "Status": run.status,
        "Data": json.dumps(run.data, default=str),
        "CreatedAt": run.created_at,
        "UpdatedAt": run.updated_at,
    }


def _run_from_entity(row: Any) -> RunRecord:
    return RunRecord(
        kind=row["PartitionKey"],
        run_id=row.get("RunId") or row["RowKey"],
        step=row["Step"],
        status=row["Status"],
        data=json.loads(row.get("Data") or "{}"),
        created_at=row["CreatedAt"],
        updated_at=row["UpdatedAt"],
        etag=row.metadata["etag"],
    )
