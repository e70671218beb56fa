"""Every receiver type is accepted by the policy and built from it; a bad one is refused by
`parse_policy` (so `pitcrew policy validate`), naming the receiver."""

from __future__ import annotations

import httpx
import pytest

from pitcrew.errors import PolicyInvalid
from pitcrew.notify.channels import build_channels
from pitcrew.policy import parse_policy

POLICY = """
version: 1
receivers:
  hook: {type: webhook, url: "https://hooks.example.com/pitcrew"}
  pager: {type: pagerduty, routing_key_setting: PAGERDUTY_ROUTING_KEY}
  teams: {type: teams, url_setting: TEAMS_WORKFLOW_URL}
  slack: {type: slack, url_setting: SLACK_WEBHOOK_URL}
  mail: {type: email, host: smtp.example.com, from_address: pitcrew@example.com,
         to: [oncall@example.com], password_setting: SMTP_PASSWORD, username: pitcrew}
  topic: {type: eventgrid, endpoint: "https://topic.westeurope-1.eventgrid.azure.net/api/events"}
route:
  receiver: hook
  routes:
    - {matchers: ["severity=critical"], receiver: pager, continue: true}
    - {matchers: ["kind=deadletter"], receiver: slack}
    - {matchers: ["kind=quota"], receiver: teams}
    - {matchers: ["kind=expiry"], receiver: mail}
    - {matchers: ["kind=rotation"], receiver: topic}
"""


def test_every_receiver_type_is_a_policy_receiver_and_is_built() -> None:
    policy = parse_policy(POLICY)
    with httpx.Client() as client:
        receivers = build_channels(policy, client)
    assert set(receivers) == {"hook", "pager", "teams", "slack", "mail", "topic"}
    assert {type(r).__name__ for r in receivers.values()} == {
        "WebhookReceiver", "PagerDutyReceiver", "TeamsReceiver", "SlackReceiver",
        "EmailReceiver", "EventGridReceiver",
    }


@pytest.mark.parametrize(
    "bad",
    [
        "{type: pagerduty}",
        "{type: teams, url_setting: 'not a setting'}",
        "{type: email, host: 'smtp example', from_address: x, to: []}",
        "{type: carrier-pigeon}",
    ],
)
def test_a_bad_receiver_is_refused_naming_it(bad: str) -> None:
    text = POLICY.replace('pager: {type: pagerduty, routing_key_setting: PAGERDUTY_ROUTING_KEY}',
                          f"pager: {bad}")
    with pytest.raises(PolicyInvalid) as err:
        parse_policy(text)
    assert any("pager" in problem for problem in err.value.problems), err.value.problems


@pytest.mark.parametrize(("receiver", "problem"), [
    ("{type: webhook}", "give exactly one of 'url' or 'url_setting'"),
    ("{type: webhook, url: 'https://h.example.com/', url_setting: HOOK_URL}",
     "give exactly one of 'url' or 'url_setting'"),
    ("{type: eventgrid}", "give exactly one of 'endpoint' or 'endpoint_setting'"),
    ("{type: eventgrid, endpoint: 'https://t.example.com/', endpoint_setting: TOPIC_URL}",
     "give exactly one of 'endpoint' or 'endpoint_setting'"),
])
def test_a_receiver_gives_its_address_or_the_setting_holding_it(receiver: str,
                                                                problem: str) -> None:
    text = POLICY.replace('hook: {type: webhook, url: "https://hooks.example.com/pitcrew"}',
                          f"hook: {receiver}")
    with pytest.raises(PolicyInvalid) as err:
        parse_policy(text)
    assert any("hook" in p and problem in p for p in err.value.problems), err.value.problems
