"""Macro values built from an app, an event and a decision."""

import pytest

from postbackd.eventlog import AppConfig, Attribution, Decision, Event
from postbackd.integrations import KNOWN_MACROS, build_macros

APP = AppConfig(app_id="app-1", platform="ios", bundle_id="com.example.game", name="Example Game")

# 2025-12-04T10:00:00Z
INSTALL_TIME = 1764842400.75


def make_event(**changes) -> Event:
    values = dict(
        app="app-1",
        id="ev-1",
        type="install",
        device="dev-1",
        time=INSTALL_TIME,
        country="DE",
        device_ids={"idfa": "IDFA-1", "idfv": "IDFV-1"},
        ip="203.0.113.7",
        user_agent="Game/1.0",
        attribution=Attribution(
            network="acme", agency="ag", campaign_id="c1", tracker_id="t1", click_id="k1", site_id="s1", creative_id="cr1"
        ),
    )
    values.update(changes)
    return Event(**values)


def make_decision(**changes) -> Decision:
    values = dict(
        network="acme",
        postback="install",
        outcome="scheduled",
        reason="scheduled",
        postback_id="pb_1",
        attribution_type="install",
        attribution_network="acme",
        attribution_agency="ag",
    )
    values.update(changes)
    return Decision(**values)


def test_install_macros():
    macros = build_macros(APP, make_event(), make_decision(), None)

    assert set(macros) == KNOWN_MACROS
    assert macros == {
        "event_name": "_install",
        "event_id": "ev-1",
        "postback_id": "pb_1",
        "device_id": "dev-1",
        "idfa": "IDFA-1",
        "idfv": "IDFV-1",
        "adid": "",
        "android_id": "",
        "ip": "203.0.113.7",
        "user_agent": "Game/1.0",
        "country": "DE",
        "time": "2025-12-04T10:00:00Z",
        "timestamp": "1764842400",
        "app_id": "app-1",
        "app_name": "Example Game",
        "bundle_id": "com.example.game",
        "platform": "ios",
        "network": "acme",
        "agency": "ag",
        "campaign_id": "c1",
        "tracker_id": "t1",
        "click_id": "k1",
        "site_id": "s1",
        "creative_id": "cr1",
        "attribution_type": "install",
        "revenue": "",
        "currency": "",
        "partner_event_name": "",
    }


def test_event_macros():
    event = make_event(
        type="event", name="Purchase", attribution=None, country=None, data={"sum": 4.99, "currency": "USD"}
    )
    decision = make_decision(postback="Purchase", attribution_type="unattributed", attribution_network=None, attribution_agency=None)

    macros = build_macros(APP, event, decision, "purchase_v2")

    assert macros["event_name"] == "Purchase"
    assert macros["partner_event_name"] == "purchase_v2"
    assert macros["revenue"] == "4.99"
    assert macros["currency"] == "USD"
    assert macros["attribution_type"] == "unattributed"
    assert macros["network"] == ""
    assert macros["agency"] == ""
    assert macros["click_id"] == ""
    assert macros["country"] == ""


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"revenue": 4.99}, "4.99"),
        ({"revenue": 5}, "5"),
        ({"revenue": "0.990"}, "0.990"),
        ({"revenue": 1.5, "sum": 9}, "1.5"),
        ({"revenue": None, "sum": 9}, "9"),
        ({"sum": "12.00"}, "12.00"),
        ({"revenue": True}, ""),
        ({"revenue": {"amount": 1}}, ""),
        ({}, ""),
    ],
)
def test_revenue_as_given(data, expected):
    event = make_event(type="event", name="Purchase", data=data)

    assert build_macros(APP, event, make_decision(), None)["revenue"] == expected


def test_currency_must_be_text():
    event = make_event(type="event", name="Purchase", data={"currency": 978})

    assert build_macros(APP, event, make_decision(), None)["currency"] == ""


def test_unscheduled_decision_has_no_postback_id():
    decision = make_decision(outcome="suppressed", reason="partner_inactive", postback_id=None)

    assert build_macros(APP, make_event(), decision, None)["postback_id"] == ""


@pytest.mark.parametrize(
    ("event_country", "decision_country", "expected"),
    [
        (None, "US", "US"),
        ("DE", "DE", "DE"),
        ("DE", None, "DE"),
        (None, None, ""),
    ],
    ids=["from-install", "own", "own-recorded-before-field", "unknown"],
)
def test_country_macro_uses_decision_country(event_country, decision_country, expected):
    event = make_event(type="event", name="Purchase", country=event_country)
    decision = make_decision(postback="Purchase", country=decision_country)

    macros = build_macros(APP, event, decision, None)

    assert macros["country"] == expected
