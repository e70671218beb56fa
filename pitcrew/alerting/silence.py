"""Silences: while one is active, alerts all of whose labels it matches are not notified.

Created, listed and expired by operators (role Operator; `POST/GET /api/silences`,
`DELETE /api/silences/{id}`, `pitcrew silences`), every change audited with who asked.
Expiring sets the end to now: a silence is never deleted, so the audit and the list keep it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from pitcrew.alerting.model import Silence
from pitcrew.alerting.policy import Matcher
from pitcrew.alerting.ports import SilenceStore
from pitcrew.audit import AuditRecord
from pitcrew.errors import Conflict, InvalidInput, RetryLater
from pitcrew.http.paging import Page
from pitcrew.ports import AuditLog
from pitcrew.state import utcnow

MAX_SILENCE = timedelta(days=366)


class Silences:
    def __init__(self, store: SilenceStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit

    def create(self, *, matchers: list[Matcher], ends_at: datetime, comment: str, actor: str,
               starts_at: datetime | None = None, now: datetime | None = None) -> Silence:
        now = now or utcnow()
        starts = starts_at or now
        if not matchers:
            raise InvalidInput("matchers", "at least one matcher is required")
        if ends_at <= starts or ends_at <= now:
            raise InvalidInput("endsAt", "must be later than startsAt and than now")
        if ends_at - starts > MAX_SILENCE:
            raise InvalidInput("endsAt", f"a silence lasts at most {MAX_SILENCE.days} days")
        if all(m.matches({}) for m in matchers):
            # `alertRule=~".*"` and the like: would silence every alert, including pitcrew's own
            raise InvalidInput("matchers", "would match every alert; name what to silence")
        silence = Silence(id=uuid.uuid4().hex, matchers=matchers, starts_at=starts,
                          ends_at=ends_at, comment=comment, created_by=actor, created_at=now,
                          updated_at=now)
        self._store.add(silence)
        self._changed()
        self._audit.append(AuditRecord(
            actor=actor, action="alerting.silence.create", target=f"silence/{silence.id}",
            outcome="succeeded", correlation_id=silence.id,
            details={"matchers": [str(m) for m in matchers], "startsAt": starts.isoformat(),
                     "endsAt": ends_at.isoformat(), "comment": comment},
        ))
        return silence

    def expire(self, silence_id: str, *, actor: str, now: datetime | None = None) -> Silence:
        """End a silence now; expiring an expired silence changes nothing and says so."""
        now = now or utcnow()
        for _ in range(5):
            silence = self._store.get(silence_id)
            if silence is None:
                raise LookupError(f"no silence {silence_id!r}")
            if silence.state(now) == "expired":
                return silence
            silence.ends_at = now
            silence.updated_at = now
            silence.expired_by = actor
            try:
                self._store.save(silence)
            except Conflict:
                continue
            self._changed()
            self._audit.append(AuditRecord(
                actor=actor, action="alerting.silence.expire", target=f"silence/{silence.id}",
                outcome="succeeded", correlation_id=silence.id,
                details={"matchers": [str(m) for m in silence.matchers],
                         "comment": silence.comment},
            ))
            return silence
        raise RetryLater(f"silence {silence_id!r} kept changing; try again")

    def get(self, silence_id: str) -> Silence | None:
        return self._store.get(silence_id)

    def page(self, *, limit: int, continuation: Mapping[str, Any] | None = None
             ) -> Page[Silence]:
        return self._store.page(limit=limit, continuation=continuation)

    def active(self, now: datetime | None = None) -> list[Silence]:
        now = now or utcnow()
        return [s for s in self._unexpired(now) if s.state(now) == "active"]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read the silences once for the whole block (a delivery of many events, on this
        context and the worker contexts copied from it) instead of once per alert. A silence
        created or expired in this process during the block is seen at once; one created
        elsewhere, from the next delivery on."""
        if _SNAPSHOT.get() is not None:
            yield
            return
        token = _SNAPSHOT.set(_Snapshot(self))
        try:
            yield
        finally:
            _SNAPSHOT.reset(token)

    def _unexpired(self, now: datetime) -> list[Silence]:
        held = _SNAPSHOT.get()
        if held is None or held.owner is not self:
            return self._store.unexpired(now)
        with held.lock:
            if held.silences is None:
                # Read a minute back: `now` of a later alert of the block may be earlier.
                held.silences = self._store.unexpired(now - timedelta(minutes=1))
            return list(held.silences)

    def _changed(self) -> None:
        held = _SNAPSHOT.get()
        if held is not None and held.owner is self:
            with held.lock:
                held.silences = None


class _Snapshot:
    def __init__(self, owner: Silences) -> None:
        self.owner = owner
        self.lock = threading.Lock()
        self.silences: list[Silence] | None = None


_SNAPSHOT: ContextVar[_Snapshot | None] = ContextVar("pitcrew_silences", default=None)


def silenced_by(silences: list[Silence], labels: dict[str, str], now: datetime) -> list[str]:
    """The ids of the silences that mute an alert with these labels now."""
    return [s.id for s in silences if s.mutes(labels, now)]
