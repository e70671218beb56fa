"""The Quota API adapter reads the request's id from the Location of the PUT's answer, in both
shapes Azure gives it (the Quota_CreateOrUpdate examples of azure-rest-api-specs)."""

from __future__ import annotations

import pytest

from pitcrew.azure.quota import request_id_of

SCOPE = ("https://management.azure.com/subscriptions/D7EC67B3-7657-4966-BFFC-41EFD36BAAB3/"
         "providers/Microsoft.Network/locations/eastus/providers/Microsoft.Quota")
ID = "2B5C8515-37D8-4B6A-879B-CD641A2CF605"


@pytest.mark.parametrize("location", [
    f"{SCOPE}/operationsStatus/{ID}?api-version=2025-09-01",  # 202: no body
    f"{SCOPE}/quotaRequests/{ID}?api-version=2023-02-01",  # 200: the quota as raised
    f"{SCOPE}/quotaRequests/{ID}",
])
def test_the_request_id_is_the_last_segment_of_either_location(location: str) -> None:
    assert request_id_of(location) == ID


@pytest.mark.parametrize("location", ["", "https://example.com/elsewhere/x?y=1"])
def test_no_quota_location_means_no_request_to_follow(location: str) -> None:
    assert request_id_of(location) == ""
