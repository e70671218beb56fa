"""Service Bus side of the operator surface (the namespace faked at the azure-servicebus client
boundary, the store on Azurite): application-property filters, binary bodies, and purge now
deleting the broker's copies of stored messages that were never settled."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pitcrew.deadletter import api
from pitcrew.deadletter.ingest import scan
from tests.integration.dlq_support import get_deadletter
from tests.integration.fake_servicebus import FakeNamespace, FakeReceiver
from tests.integration.test_deadletter_servicebus import dead_letter_orders, ns  # noqa: F401
from tests.integration.test_deadletter_storage import OPERATOR, READER


def test_filter_by_application_property(ns: FakeNamespace) -> None:  # noqa: F811
    dead_letter_orders(ns, 6)
    scan(get_deadletter(), ["orders"])
    (group,) = api.list_groups(READER, {}).body["groups"]
    one = api.show_group(READER, group["id"], {"prop.attempt": "4", "prop.flag": "true"})
    assert [m["applicationProperties"]["attempt"] for m in one.body["messages"]] == [4]
    assert api.show_group(READER, group["id"], {"prop.tenant": "fabrikam"}).body[
        "messages"] == []
    assert len(api.show_group(READER, group["id"], {"prop.tenant": "contoso"}).body[
        "messages"]) == 6


def test_binary_body_hex_preview_and_view(ns: FakeNamespace) -> None:  # noqa: F811
    ns.dead_letter("orders", bytes(range(200)), "Bad", "binary")
    scan(get_deadletter(), ["orders"])
    (group,) = api.list_groups(READER, {}).body["groups"]
    (message,) = api.show_group(READER, group["id"], {}).body["messages"]
    assert message["preview"].startswith("hex:000102") and len(message["preview"]) <= 120
    body = api.show_message(READER, message["id"], {"body": "true"}).body["body"]
    assert body["format"] == "binary" and body["hex"].startswith("00 01 02")


def test_purge_deletes_broker_copies_left_unsettled(ns: FakeNamespace,  # noqa: F811
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[int] = []

    def abandon(self: FakeReceiver, message: Any) -> None:  # the SDK's abandon_message
        stored = message._stored
        stored.locked_until, stored.lock_owner = -1.0, None
        released.append(stored.sequence_number)

    monkeypatch.setattr(FakeReceiver, "abandon_message", abandon, raising=False)
    dead_letter_orders(ns, 3)
    dl = get_deadletter()
    real_put = dl.store.put_many

    def slow_put(items: Any) -> Any:  # the locks lapse before the settle: all stay at the broker
        created = real_put(items)
        ns.clock_handle.now += 60  # type: ignore[attr-defined]
        return created

    monkeypatch.setattr(dl.store, "put_many", slow_put)
    (report,) = scan(dl, ["orders"])
    assert report.stored == 3 and report.unsettled == 3
    monkeypatch.setattr(dl.store, "put_many", real_put)
    other = ns.dead_letter("orders", b"{}", "Other", "not this group")
    ns.clock_handle.now += 60  # type: ignore[attr-defined]
    assert len(ns.entities["orders/$deadletterqueue"]) == 4
    (group,) = api.list_groups(READER, {}).body["groups"]
    done = api.purge(OPERATOR, json.dumps({"group": group["id"]}).encode())
    assert done.status == 200, done.body
    assert done.body["purged"] == 3 and done.body["brokerDeleted"] == 3
    assert [m.sequence_number for m in ns.entities["orders/$deadletterqueue"]] == [
        other.sequence_number]
    assert released == [other.sequence_number]  # the others were released, not kept locked
    # The next scan finds only the message that was never part of the purge.
    (again,) = scan(dl, ["orders"])
    assert again.received == 1
