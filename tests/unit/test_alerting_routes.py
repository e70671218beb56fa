"""Issue 12: matchers, the routing tree, the flat routes' translation, time intervals and the
policy checks that make an unrouted notification impossible."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pitcrew.alerting.inhibit import Inhibitor
from pitcrew.alerting.policy import InhibitRule, Matcher, TimeInterval, parse_duration
from pitcrew.alerting.route import build_tree, match_routes, time_muted
from pitcrew.errors import PolicyInvalid
from pitcrew.policy import parse_policy

RECEIVERS = ("receivers:\n  a: {type: webhook, url: 'https://a.example'}\n"
             "  b: {type: webhook, url: 'https://b.example'}\n"
             "  c: {type: webhook, url: 'https://c.example'}\n")


def policy(route: str, extra: str = "") -> str:
    return "version: 1\n" + RECEIVERS + route + extra


@pytest.mark.parametrize("text,labels,expected", [
    ('alertRule="cpu"', {"alertRule": "cpu"}, True),
    ("alertRule=cpu", {"alertRule": "cpu2"}, False),
    ('severity!="info"', {"severity": "warning"}, True),
    ('severity!="info"', {}, True),
    ('kind=~"alert|quota"', {"kind": "quota"}, True),
    ('kind=~"alert|quota"', {"kind": "quota-x"}, False),  # anchored
    ('resource!~".*/test/.*"', {"resource": "/s/prod/x"}, True),
    ('customProperties.team="db"', {"customProperties.team": "db"}, True),
])
def test_matchers(text: str, labels: dict[str, str], expected: bool) -> None:
    assert Matcher.parse(text).matches(labels) is expected


@pytest.mark.parametrize("bad", ["", "noop", "=x", "a=~\"(\"", "1a=b"])
def test_bad_matchers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        Matcher.parse(bad)


@pytest.mark.parametrize("hostile", ["a=b\x1b[2J", 'a="b\u202ec"', "a=~b\x00", "a!=\x7f"])
def test_a_matcher_with_control_or_bidi_characters_is_refused_and_not_echoed_raw(
        hostile: str) -> None:
    """Matchers are echoed to terminals and the console: a raw escape sequence would rewrite
    what the operator reads. A regex escape in text (\\x1b) is still a matcher."""
    with pytest.raises(ValueError) as refused:
        Matcher.parse(hostile)
    assert not any(c in str(refused.value) for c in "\x1b\u202e\x00\x7f")
    assert Matcher.parse('a=~"x\\\\x1b"').matches({"a": "x\x1b"})


def test_a_regex_matcher_runs_in_linear_time_on_a_hostile_label_value() -> None:
    """RE2, as Alertmanager's Go regexp: a pattern that backtracks exponentially in Python's
    `re` ((a+)+$ against 1,024 a's and a '!' would not return in a lifetime) answers at once,
    correctly, every time; RE2 has no lookaround, so such a pattern is refused by name."""
    hostile = {"alertRule": "a" * 1023 + "!"}
    for _ in range(2):
        assert Matcher.parse("alertRule=~(a+)+$").matches(hostile) is False
        assert Matcher.parse("alertRule!~(a+)+$").matches(hostile) is True
    assert Matcher.parse("alertRule=~(a+)+!").matches(hostile) is True
    assert Matcher.parse('summary=~"line one.line two"').matches(
        {"summary": "line one\nline two"})  # `.` takes a newline, as before
    with pytest.raises(ValueError, match="RE2"):
        Matcher.parse("alertRule=~(?=cpu).*")


def test_durations() -> None:
    assert parse_duration("30s") == 30 and parse_duration("1h30m") == 5400
    assert parse_duration(0) == 0 and parse_duration("2d") == 172800
    for bad in ("soon", "5x", "-1s", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_routing_tree_descends_continues_and_falls_back_to_the_root() -> None:
    p = parse_policy(policy(
        "route:\n  receiver: a\n  group_wait: 10s\n  routes:\n"
        "    - matchers: ['severity=\"critical\"']\n      receiver: b\n      continue: true\n"
        "      group_by: ['...']\n"
        "    - matchers: ['kind=\"alert\"']\n      receiver: c\n      routes:\n"
        "        - matchers: ['alertRule=\"db\"']\n          group_wait: 1s\n"))
    tree = build_tree(p.route_tree())
    names = lambda labels: [(r.receiver, r.id) for r in match_routes(tree, labels)]  # noqa: E731
    assert names({"kind": "alert", "severity": "critical"}) == [("b", "root/0"),
                                                                 ("c", "root/1")]
    assert names({"kind": "expiry"}) == [("a", "root")]
    (db,) = match_routes(tree, {"kind": "alert", "alertRule": "db"})
    assert db.receiver == "c" and db.group_wait == 1 and db.group_interval == 300
    assert tree.children[0].grouping_off and tree.group_by != ("...",)


def test_group_keys() -> None:
    tree = build_tree(parse_policy(policy("route: {receiver: a, group_by: [alertRule]}\n"))
                      .route_tree())
    a = tree.group_key({"alertRule": "x", "resource": "1"}, "fp1")
    b = tree.group_key({"alertRule": "x", "resource": "2"}, "fp2")
    assert a == b == 'root:{alertRule="x"}'


def test_the_root_must_name_a_receiver() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(policy("route:\n  routes:\n    - {matchers: ['a=b'], receiver: a}\n"))
    assert any(p.startswith("route.receiver: the root route must name a receiver")
               for p in caught.value.problems)


def test_unknown_receivers_and_intervals_are_named() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(policy("route:\n  receiver: a\n  routes:\n"
                            "    - {receiver: zz, mute_time_intervals: [night]}\n"))
    problems = caught.value.problems
    assert any("route.routes[0].receiver: unknown receiver 'zz'" in p for p in problems)
    assert any("unknown time interval 'night'" in p for p in problems)


def test_flat_routes_translate_and_need_a_catch_all() -> None:
    flat = ("routes:\n  - {name: crit, match: {severities: [critical]}, channels: [a, b]}\n"
            "  - {name: rest, channels: [c]}\n")
    tree = build_tree(parse_policy(policy(flat)).route_tree())
    picked = [r.receiver for r in match_routes(tree, {"severity": "critical", "kind": "x"})]
    assert picked == ["a", "b"]
    assert [r.receiver for r in match_routes(tree, {"severity": "info"})] == ["c"]
    assert tree.group_wait == 0 and tree.grouping_off
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(policy("routes:\n  - {name: crit, match: {kinds: [alert]}, channels: [a]}\n"))
    assert "no route takes every notification" in caught.value.problems[0]
    with pytest.raises(PolicyInvalid):
        parse_policy(policy("route: {receiver: a}\nroutes:\n  - {name: x, channels: [a]}\n"))


def test_channels_is_the_old_name_of_receivers() -> None:
    p = parse_policy("version: 1\nchannels:\n  a: {type: webhook, url: 'https://a.example'}\n"
                     "routes:\n  - {name: all, channels: [a]}\n")
    assert list(p.receivers) == ["a"] and p.channels is p.receivers


def test_time_intervals_mute_and_activate_routes() -> None:
    p = parse_policy(policy(
        "route:\n  receiver: a\n  routes:\n"
        "    - {matchers: ['x=1'], receiver: b, mute_time_intervals: [weekend]}\n"
        "    - {matchers: ['x=2'], receiver: c, active_time_intervals: [office]}\n",
        "time_intervals:\n"
        "  weekend: [{weekdays: ['saturday:sunday']}]\n"
        "  office: [{weekdays: ['monday:friday'], times: [{start_time: '09:00', "
        "end_time: '17:00'}], location: Europe/Paris}]\n"))
    tree = build_tree(p.route_tree())
    saturday = datetime(2026, 11, 21, 12, tzinfo=UTC)
    monday_noon = datetime(2026, 11, 23, 11, tzinfo=UTC)  # 12:00 in Paris
    assert time_muted(tree.children[0], p.time_intervals, saturday) == "weekend"
    assert time_muted(tree.children[0], p.time_intervals, monday_noon) is None
    assert time_muted(tree.children[1], p.time_intervals, saturday) == "outside office"
    assert time_muted(tree.children[1], p.time_intervals, monday_noon) is None
    assert TimeInterval(days_of_month=["-1"]).contains(datetime(2026, 2, 28, tzinfo=UTC))


def test_an_alert_never_inhibits_itself() -> None:
    rule = InhibitRule(source_matchers=["kind=alert"], target_matchers=["kind=alert"],
                       equal=["resourceGroup"])
    inhibitor = Inhibitor([rule])
    me = {"kind": "alert", "resourceGroup": "rg"}
    assert inhibitor.inhibited_by(me, "fp1", [("fp1", me)]) == []
    assert inhibitor.inhibited_by(me, "fp1", [("fp1", me), ("fp2", me)]) == ["fp2"]
    other_rg = {"kind": "alert", "resourceGroup": "other"}
    assert inhibitor.inhibited_by(me, "fp1", [("fp3", other_rg)]) == []
