"""An edit makes exactly one replayable message of the original, whatever happens around it:
a crash halfway, two operators at once, a replay that takes the original meanwhile."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from pitcrew.deadletter import api
from pitcrew.deadletter.ingest import scan
from tests.integration.dlq_support import get_deadletter
from tests.integration.test_deadletter_storage import (  # noqa: F401 - fixtures
    OPERATOR,
    audit,
    drain,
    poison,
    queue_names,
    run_job,
)


def _one_failed(queue: str) -> tuple[Any, str, str]:
    poison(queue, [json.dumps({"order": 1})])
    dl = get_deadletter()
    scan(dl, ["orders"])
    group = next(dl.store.groups()).id
    return dl, group, next(dl.store.in_group(group)).id


def _edit(message: str, text: str) -> Any:
    return api.edit_message(OPERATOR, message, json.dumps({"body": {"text": text}}).encode())


def _replay_group(group: str) -> None:
    accepted = api.request_replay(OPERATOR, json.dumps({"group": group}).encode())
    assert accepted.status == 202, accepted.body
    run_job(accepted.body["id"])


def _statuses(dl: Any, group: str) -> list[str]:
    return sorted(m.status for m in dl.store.in_group(group))


def test_an_edit_that_died_halfway_is_finished_by_asking_again(
        queue_names: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    dl, group, message = _one_failed(queue_names)
    store = type(dl.store)
    put, update = store.put, store.update
    dead = {"put": True, "update": False}

    def dies_putting(self: Any, *args: Any) -> Any:
        if dead["put"]:
            dead["put"], dead["update"] = False, True
            raise RuntimeError("the instance died")
        return put(self, *args)

    def dies_handing_back(self: Any, *args: Any) -> Any:
        if dead["update"]:
            dead["update"] = False
            raise RuntimeError("the instance died")
        return update(self, *args)

    monkeypatch.setattr(store, "put", dies_putting)
    monkeypatch.setattr(store, "update", dies_handing_back)
    assert _edit(message, "fixed").status == 500  # logged; the operator asks again
    assert _statuses(dl, group) == ["superseded"]  # the original names an edit not written
    again = _edit(message, "fixed")
    assert again.status == 201, again.body
    assert _edit(message, "fixed").status == 400  # finished: the original is superseded
    assert _statuses(dl, group) == ["failed", "superseded"]
    _replay_group(group)
    assert drain(queue_names) == ["fixed"]
    assert len(audit("dlq.edit")) == 1


def test_a_failed_write_hands_the_original_back(
        queue_names: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    dl, group, message = _one_failed(queue_names)
    store = type(dl.store)
    put = store.put
    failures = [RuntimeError("Table storage said no")]

    def refuses_once(self: Any, *args: Any) -> Any:
        if failures:
            raise failures.pop()
        return put(self, *args)

    monkeypatch.setattr(store, "put", refuses_once)
    assert _edit(message, "fixed").status == 500
    assert _statuses(dl, group) == ["failed"]
    assert _edit(message, "fixed").status == 201
    _replay_group(group)
    assert drain(queue_names) == ["fixed"]


def test_two_edits_at_once_make_one_message(
        queue_names: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    dl, group, message = _one_failed(queue_names)
    store = type(dl.store)
    update = store.update
    both_read = threading.Barrier(2)

    def after_both_read(self: Any, *args: Any) -> Any:
        both_read.wait(timeout=10)
        return update(self, *args)

    monkeypatch.setattr(store, "update", after_both_read)
    answers: list[int] = []
    threads = [threading.Thread(target=lambda t=text: answers.append(_edit(message, t).status))
               for text in ("A-fix", "B-fix")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.setattr(store, "update", update)
    assert sorted(answers) == [201, 503]
    assert _statuses(dl, group) == ["failed", "superseded"]
    _replay_group(group)
    assert len(drain(queue_names)) == 1


def test_an_edit_racing_a_replay_of_the_original_writes_nothing(
        queue_names: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    dl, group, message = _one_failed(queue_names)
    store = type(dl.store)
    update = store.update
    raced: list[str] = []

    def replay_first(self: Any, *args: Any) -> Any:
        if not raced:
            raced.append("replaying")  # the replay's own updates pass straight through
            accepted = api.request_replay(OPERATOR, json.dumps({"messages": [message]}).encode())
            run_job(accepted.body["id"])
        return update(self, *args)

    monkeypatch.setattr(store, "update", replay_first)
    answer = _edit(message, "fixed")
    monkeypatch.setattr(store, "update", update)
    assert answer.status == 503, answer.body
    assert _statuses(dl, group) == ["replayed"]
    (sent,) = drain(queue_names)  # the original, as it was queued: never the edit as well
    assert "fixed" not in sent


def test_a_body_that_is_not_unicode_text_is_a_400(queue_names: str) -> None:  # noqa: F811
    dl, group, message = _one_failed(queue_names)
    answer = api.edit_message(OPERATOR, message, b'{"body": {"text": "\\ud800"}}')
    assert answer.status == 400 and answer.body["field"] == "body.text", answer.body
    assert _statuses(dl, group) == ["failed"]


def test_an_edit_of_a_message_that_does_not_exist_is_a_404(queue_names: str) -> None:  # noqa: F811
    for _ in range(2):
        answer = _edit("0123456789ab-0123456789abcdef0123", "x")
        assert answer.status == 404, answer.body
        assert answer.body["error"] == "not_found" and answer.body["field"] == "message"
    assert audit("dlq.edit") == []
