"""Issue 16: a delivery larger than the handler can answer within Event Grid's 30 s is refused
as a whole (400 naming the limit and the subscription setting), before any event is acted on."""

from __future__ import annotations

import json
import uuid

from pitcrew.intake import api
from tests.conftest import SAMPLES


def delivery(count: int) -> bytes:
    template = json.loads((SAMPLES / "keyvault-secret-near-expiry.eventgrid.json").read_text())[0]
    return json.dumps([dict(template, id=str(uuid.uuid4())) for _ in range(count)]).encode()


def test_a_delivery_over_the_limit_is_a_400_naming_the_limit() -> None:
    result = api.receive_events("POST", {"content-type": "application/json"},
                                delivery(api.MAX_BATCH_EVENTS + 1))
    assert result.status == 400
    body = result.body
    assert isinstance(body, dict) and body["field"] == "body"
    assert f"at most {api.MAX_BATCH_EVENTS}" in body["message"]
    assert "max events per batch" in body["message"]
