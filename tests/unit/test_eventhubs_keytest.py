"""The Event Hubs key test builds the SDK clients the way azure-eventhub takes them: an
unreachable namespace is a clear connection failure, never a TypeError from the call."""

from __future__ import annotations

import pytest
from azure.core.credentials import AzureNamedKeyCredential

from pitcrew.azure.arm import DataPlane


@pytest.mark.parametrize("right", ["Listen", "Send"])
def test_unreachable_namespace_is_a_connection_failure(right: str) -> None:
    plane = DataPlane()
    credential = AzureNamedKeyCredential("listen-only", "a2V5")
    with pytest.raises(Exception) as err:
        plane._eventhubs_amqp("pitcrew-nonexistent-ns.invalid", "orders", credential, right)
    assert not isinstance(err.value, TypeError), err.value
