"""Rows larger than one Table property (64 KiB) are stored, read back whole, and shrink back
to one property without leaving old chunks in force."""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime, timedelta

import pytest

from pitcrew.azure.tables.outbox import TableOutboxStore
from pitcrew.azure.tables.payload import pack, unpack
from pitcrew.notify.model import Notification


def _noise(size: int) -> str:
    rng = random.Random(7)
    return "".join(rng.choice(string.ascii_letters + "é\u202e🔥") for _ in range(size))


@pytest.mark.azurite
def test_a_notification_over_64k_is_stored_and_read_back(
    storage_connection_string: str, unique_name: str
) -> None:
    from azure.data.tables import TableServiceClient

    table = TableServiceClient.from_connection_string(storage_connection_string).create_table(
        unique_name
    )
    store = TableOutboxStore(table)
    alerts = tuple(
        Notification(id=f"a{i}", dedup_key=f"a{i}", kind="alert", severity="warning",
                     status="firing", title=f"alert {i}", summary=_noise(8_000),
                     correlation_id=f"a{i}", facts={"n": str(i)})
        for i in range(20)
    )
    group = Notification(id="group:1", dedup_key="group:1", kind="alert", severity="warning",
                         status="firing", title="20 alerts", summary="-", correlation_id="g",
                         facts={}, alerts=alerts, group_key="g")
    now = datetime.now(UTC)
    entry = store.insert("hook", group, now=now, lease_until=now + timedelta(seconds=30))
    assert entry.created
    stored = store.get("hook", "group:1")
    assert stored is not None
    assert stored.notification.to_dict() == group.to_dict()


@pytest.mark.azurite
def test_pack_round_trips_and_a_shrunk_value_leaves_no_chunks(
    storage_connection_string: str, unique_name: str
) -> None:
    from azure.data.tables import TableServiceClient, UpdateMode

    table = TableServiceClient.from_connection_string(storage_connection_string).create_table(
        unique_name
    )
    big = json.dumps({"text": _noise(300_000)})
    table.create_entity({"PartitionKey": "p", "RowKey": "r", **pack("Data", big)})
    assert unpack("Data", table.get_entity("p", "r")) == big
    table.update_entity({"PartitionKey": "p", "RowKey": "r", **pack("Data", '{"small": 1}')},
                        mode=UpdateMode.MERGE)
    assert unpack("Data", table.get_entity("p", "r")) == '{"small": 1}'


def test_a_value_too_large_for_a_row_is_refused_naming_it() -> None:
    rng = random.Random(1)
    incompressible = "".join(rng.choice(string.printable) for _ in range(2_000_000))
    with pytest.raises(ValueError, match="Data"):
        pack("Data", incompressible)
