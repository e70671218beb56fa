"""Dead-letter logic that needs no storage: cause normalisation, policy validation and replay
properties (the replay rate limiter: tests/unit/test_replay_rate.py)."""

from __future__ import annotations

import pytest

from pitcrew.deadletter.grouping import group_id, group_of, message_id, normalise_cause


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Order 12345 failed: customer 3f2504e0-4f89-11d3-9a0c-0305e82c3301 not found",
         "Order 987 failed: customer 9a0c0305-4f89-11d3-9a0c-0305e82c3301 not found"),
        ("timeout at 2026-11-21T10:00:00.123Z after 30s",
         "timeout at 2026-01-02T03:04:05Z after 5s"),
        ("sku 'A-17' unknown", "sku 'B-99' unknown"),
        ("hash deadbeef1234 mismatch", "hash 0badcafe9876 mismatch"),
    ],
)
def test_causes_that_differ_only_in_values_group_together(a: str, b: str) -> None:
    assert normalise_cause("ProcessingFailed", a) == normalise_cause("ProcessingFailed", b)


def test_different_causes_and_entities_stay_apart() -> None:
    one = normalise_cause("MaxDeliveryCountExceeded", "")
    two = normalise_cause("TTLExpiredException", "")
    assert one != two
    assert group_id("queue:a", one) != group_id("queue:b", one)
    assert len(group_id("queue:a", one)) == 12


def test_message_ids_are_stable_and_carry_their_group() -> None:
    group = group_id("queue:a", "x")
    first = message_id(group, "storage:acct/a-poison#1")
    assert first == message_id(group, "storage:acct/a-poison#1")
    assert first != message_id(group, "storage:acct/a-poison#2")
    assert group_of(first) == group


def test_policy_validation_names_the_key() -> None:
    from pitcrew.errors import PolicyInvalid
    from pitcrew.policy import parse_policy

    base = ("version: 1\nchannels:\n  h:\n    type: webhook\n    url: http://127.0.0.1:1/\n"
            "routes:\n  - name: all\n    channels: [h]\n")
    ok = parse_policy(base + "deadletter:\n  sources:\n    - {name: o, type: storage-queue, "
                             "queue: orders}\n    - {name: s, type: servicebus, namespace: "
                             "x.servicebus.windows.net, topic: t, subscription: b}\n")
    assert ok.deadletter.sources[1].entity == "servicebus:x/t/subscriptions/b"
    with pytest.raises(PolicyInvalid) as bad:
        parse_policy(base + "deadletter:\n  thresholds: [100, 10]\n  sources:\n"
                            "    - {name: s, type: servicebus, namespace: x, topic: t}\n")
    text = "\n".join(bad.value.problems)
    assert "thresholds" in text and "subscription" in text


def test_replay_properties_strip_deadletter_and_link_the_original() -> None:
    from pitcrew.deadletter.model import FailedMessage, Target
    from pitcrew.deadletter.replay import outgoing

    message = FailedMessage(
        id="g" * 12 + "-1", group="g" * 12, source="s", source_kind="servicebus",
        entity="servicebus:x/q", source_key="k", reason="r", description="d", cause="c",
        properties={"message_id": "m-1", "session_id": "s1", "dead_letter_source": "q"},
        application_properties={"DeadLetterReason": "r", "DeadLetterErrorDescription": "d",
                                 "tenant": "t1", "n": 3},
        replay_attempt=2, sent_message_id="new-1", possible_duplicate=True)
    out = outgoing(message, b"body", Target("servicebus", "topics/t", namespace="x",
                                            subscription="b"))
    assert out.properties == {"message_id": "new-1", "session_id": "s1"}
    assert out.application_properties == {
        "tenant": "t1", "n": 3, "pitcrew-replay-of": message.id, "pitcrew-replay-attempt": 2,
        "pitcrew-original-message-id": "m-1", "pitcrew-possible-duplicate": True,
        "pitcrew-replay-subscription": "b"}
