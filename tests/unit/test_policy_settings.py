"""`pitcrew policy validate --settings`: the app settings a policy names are checked in the
environment the way run time reads them (receivers' URLs, keys and passwords; dead-letter
connections; replay targets' connections; Service Bus namespaces under
PITCREW_SERVICEBUS_SUFFIX). And links run time would drop (`http:` runbook and console URLs) are
refused by the schema, so by `policy validate` and at app start."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pitcrew.cli.main import app
from pitcrew.errors import PolicyInvalid
from pitcrew.policy import parse_policy
from pitcrew.policy_settings import settings_problems

POLICY = """
version: 1
receivers:
  hook: {type: webhook, url_setting: OPS_WEBHOOK_URL, headers_setting: OPS_WEBHOOK_HEADERS}
  pager: {type: pagerduty, routing_key_setting: PAGERDUTY_ROUTING_KEY}
  teams: {type: teams, url_setting: TEAMS_WORKFLOW_URL}
  slack: {type: slack, url_setting: SLACK_WEBHOOK_URL}
  mail: {type: email, host: smtp.example.com, from_address: pitcrew@example.com,
         to: [oncall@example.com], password_setting: SMTP_PASSWORD, username: pitcrew}
  topic: {type: eventgrid, endpoint_setting: TOPIC_ENDPOINT, key_setting: TOPIC_KEY}
route:
  receiver: hook
deadletter:
  sources:
    - {name: orders, type: storage-queue, queue: orders, connection: ORDERS_STORAGE,
       replay_to: "queue:orders-retry@RETRY_STORAGE"}
    - {name: blobs, type: eventgrid-blob, container: deadletters, connection: BLOB_STORAGE}
    - {name: billing, type: servicebus, namespace: sb-billing, queue: invoices,
       connection: BILLING_SB}
  replay:
    allow_redirect: true
    targets: ["servicebus:sb-other/invoices@OTHER_SB"]
"""

# Every setting POLICY names, set to a value run time accepts.
ENV = {
    "OPS_WEBHOOK_URL": "https://hooks.example.com/pitcrew?token=x",
    "OPS_WEBHOOK_HEADERS": '{"Authorization": "Bearer x"}',
    "PAGERDUTY_ROUTING_KEY": "R0UT1NGKEY",
    "TEAMS_WORKFLOW_URL": "https://prod.westeurope.logic.azure.com/workflows/x",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/x",
    "SMTP_PASSWORD": "secret",
    "TOPIC_ENDPOINT": "https://topic.westeurope-1.eventgrid.azure.net/api/events",
    "TOPIC_KEY": "key",
    "ORDERS_STORAGE": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k",
    "RETRY_STORAGE__accountName": "retryaccount",
    "BLOB_STORAGE__blobServiceUri": "https://blobaccount.blob.core.windows.net",
    "BILLING_SB": "Endpoint=sb://sb-billing.servicebus.windows.net/;SharedAccessKeyName=k",
    "OTHER_SB": "Endpoint=sb://sb-other.servicebus.windows.net/;SharedAccessKeyName=k",
}


def without(*names: str, **changed: str) -> dict[str, str]:
    env = {k: v for k, v in ENV.items() if k not in names}
    return env | changed


def test_every_setting_set_as_run_time_reads_it_is_no_problem() -> None:
    assert settings_problems(parse_policy(POLICY), ENV) == []


def test_a_policy_naming_no_setting_needs_none() -> None:
    policy = parse_policy("version: 1\nreceivers: {ops: {type: webhook, url: "
                          "'https://hooks.example.com/x'}}\nroute: {receiver: ops}\n")
    assert settings_problems(policy, {}) == []


@pytest.mark.parametrize(("env", "expected"), [
    (without("OPS_WEBHOOK_URL"),
     "receivers.hook.url_setting: app setting OPS_WEBHOOK_URL (webhook URL) is not set"),
    (without(OPS_WEBHOOK_URL="http://hooks.example.com/x"),
     "receivers.hook.url_setting: app setting OPS_WEBHOOK_URL (webhook URL) must be an https "
     "URL (http only on loopback)"),
    (without(OPS_WEBHOOK_HEADERS="Authorization: Bearer x"),
     "receivers.hook.headers_setting: app setting OPS_WEBHOOK_HEADERS is not a JSON object of "
     "headers"),
    (without("OPS_WEBHOOK_HEADERS"),
     "receivers.hook.headers_setting: app setting OPS_WEBHOOK_HEADERS (extra headers) is not "
     "set"),
    (without("PAGERDUTY_ROUTING_KEY"),
     "receivers.pager.routing_key_setting: app setting PAGERDUTY_ROUTING_KEY (PagerDuty routing "
     "key) is not set"),
    (without("TEAMS_WORKFLOW_URL"), "receivers.teams.url_setting: app setting TEAMS_WORKFLOW_URL"),
    (without(SLACK_WEBHOOK_URL="not a url"), "receivers.slack.url_setting: app setting "
     "SLACK_WEBHOOK_URL (Slack webhook URL) must be an https URL"),
    (without("SMTP_PASSWORD"),
     "receivers.mail.password_setting: app setting SMTP_PASSWORD (SMTP password) is not set"),
    (without("TOPIC_ENDPOINT"), "receivers.topic.endpoint_setting: app setting TOPIC_ENDPOINT"),
    (without("TOPIC_KEY"), "receivers.topic.key_setting: app setting TOPIC_KEY"),
    (without("ORDERS_STORAGE"),
     "deadletter.sources[0].connection: storage connection 'ORDERS_STORAGE' is not configured: "
     "set ORDERS_STORAGE or ORDERS_STORAGE__accountName"),
    (without("RETRY_STORAGE__accountName"),
     "deadletter.sources[0].replay_to: storage connection 'RETRY_STORAGE' is not configured"),
    (without("BLOB_STORAGE__blobServiceUri"),
     "deadletter.sources[1].connection: storage connection 'BLOB_STORAGE' is not configured"),
    (without("BILLING_SB"),
     "deadletter.sources[2].connection: app setting BILLING_SB is not set"),
    (without("OTHER_SB"),
     "deadletter.replay.targets[0]: app setting OTHER_SB is not set"),
])
def test_a_setting_run_time_would_miss_is_named_with_its_field(
        env: dict[str, str], expected: str) -> None:
    found = settings_problems(parse_policy(POLICY), env)
    assert any(p.startswith(expected) for p in found), found
    assert len(found) == 1, found


def test_a_blob_source_is_not_configured_by_a_queue_endpoint() -> None:
    # Run time builds the blob client from <connection>__blobServiceUri, not __queueServiceUri.
    env = without("BLOB_STORAGE__blobServiceUri",
                  BLOB_STORAGE__queueServiceUri="https://a.queue.core.windows.net")
    found = settings_problems(parse_policy(POLICY), env)
    assert [p.split(":")[0] for p in found] == ["deadletter.sources[1].connection"], found


def test_namespaces_outside_the_clouds_suffix_are_named() -> None:
    # Run time refuses them (a source's scan fails; a replay target is logged and dropped).
    policy = parse_policy(POLICY.replace("namespace: sb-billing",
                                         "namespace: sb-billing.servicebus.chinacloudapi.cn"))
    found = settings_problems(policy, ENV)
    assert found == [
        "deadletter.sources[2].namespace: Service Bus namespace "
        "'sb-billing.servicebus.chinacloudapi.cn' is not a namespace name or a name under "
        "servicebus.windows.net (PITCREW_SERVICEBUS_SUFFIX)"], found
    china = ENV | {"PITCREW_SERVICEBUS_SUFFIX": "servicebus.chinacloudapi.cn"}
    assert settings_problems(policy, china) == []
    other = parse_policy(POLICY.replace("servicebus:sb-other/",
                                        "servicebus:sb-other.example.com/"))
    found = settings_problems(other, ENV)
    assert [p.split(":")[0] for p in found] == ["deadletter.replay.targets[0]"], found


def test_a_bad_servicebus_suffix_setting_is_named() -> None:
    found = settings_problems(parse_policy(POLICY), ENV | {"PITCREW_SERVICEBUS_SUFFIX": "x"})
    assert any(p.startswith("PITCREW_SERVICEBUS_SUFFIX=") for p in found), found


def test_cli_validate_checks_settings_only_when_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pitcrew.yaml"
    path.write_text(POLICY)
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    # Offline (CI, no app settings): the file alone, as before.
    result = runner.invoke(app, ["policy", "validate", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["policy", "validate", "--settings", str(path)])
    assert result.exit_code == 1, result.output
    assert "receivers.pager.routing_key_setting: app setting PAGERDUTY_ROUTING_KEY" in \
        result.output
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["policy", "validate", "--settings", str(path)])
    assert result.exit_code == 0, result.output
    assert "app settings checked" in result.output
    # The message names the setting, never its value (a URL with a token, a key).
    monkeypatch.setenv("OPS_WEBHOOK_URL", "http://hooks.example.com/x?token=SECRET")
    result = runner.invoke(app, ["policy", "validate", "--settings", str(path)])
    assert result.exit_code == 1
    assert "SECRET" not in result.output


VALID = """
version: 1
receivers: {ops: {type: webhook, url: "https://hooks.example.com/x"}}
route: {receiver: ops}
"""


@pytest.mark.parametrize(("text", "expected"), [
    (VALID + "notifications: {expiry: {runbook_url: 'http://wiki.example.com/rb'}}\n",
     "notifications.expiry.runbook_url: must be an https URL"),
    (VALID + "deadletter: {console_url: 'http://pitcrew.example.com'}\n",
     "deadletter.console_url: must be an https URL"),
])
def test_links_run_time_would_drop_are_refused(text: str, expected: str) -> None:
    # Notifications carry only https links (pitcrew.links.safe_link): an http runbook or
    # console URL would be dropped from every notification without a word.
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(text)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_https_links_are_accepted() -> None:
    policy = parse_policy(VALID + "notifications: {expiry: {runbook_url: "
                          "'https://wiki.example.com/rb'}}\n"
                          "deadletter: {console_url: 'https://pitcrew.example.com'}\n")
    assert str(policy.notifications.expiry.runbook_url) == "https://wiki.example.com/rb"
