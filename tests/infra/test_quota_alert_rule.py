"""The quota alert rule and the code agree: the rule searches for the line the scan writes and
splits it into the dimensions the quota alert handler reads back."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from pitcrew.quota.model import QuotaId, QuotaState
from pitcrew.quota.scan import THRESHOLD_LINE, _threshold_line

RULES = Path(__file__).resolve().parents[2] / "infra" / "modules" / "alerts.bicep"
SCOPE = ("subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Compute/"
         "locations/eastus")


def test_rule_splits_the_line_the_scan_writes(caplog: pytest.LogCaptureFixture) -> None:
    text = RULES.read_text()
    query = re.search(r"query: '(traces \| where message startswith \"pitcrew\.quota[^']+)'",
                      text)
    assert query, "the quotaUsage rule searches the scan's log line"
    assert f'startswith "{THRESHOLD_LINE} "' in query.group(1)
    fields = dict(re.findall(r"(\w+) = tostring\(f\[(\d)\]\)", query.group(1)))
    assert fields == {"Quota": "1", "Location": "2", "Provider": "3", "Subscription": "4"}
    state = QuotaState(QuotaId(SCOPE, "standardDSv5Family"), usage=90, limit=100,
                       level="warning")
    with caplog.at_level(logging.WARNING):
        _threshold_line(state)
    words = caplog.records[-1].getMessage().split(" ")
    assert words[0] == THRESHOLD_LINE
    assert [words[int(i)] for i in fields.values()] == [
        "standardDSv5Family", "eastus", "Microsoft.Compute", "00000000-0000-0000-0000-000000000000"]
    for dim in fields:
        assert f"'{dim}'" in text
