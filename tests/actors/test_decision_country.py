"""The country each decision records: the event's own, else the install's."""

from __future__ import annotations

from postbackd.actors import DecisionEngine
from postbackd.eventlog import CountryFilter, Decided, decode_record, encode_record

from .builders import DAY, T0, event, install, make_config, partner, postback, run

US_ONLY = CountryFilter(mode="allow_only", countries=("US",))


def us_only_purchase_config():
    return make_config(
        [partner("netA"), partner("netB", active=False)],
        [postback("install", "netA", method="all"), postback("Purchase", "netA", method="all", countries=US_ONLY),
         postback("Purchase", "netB", method="all")],
    )


def test_event_without_country_records_install_country() -> None:
    _, (allowed, inactive) = run(DecisionEngine(), us_only_purchase_config(),
                                 [install(country="US"), event("Purchase", T0 + DAY)])

    assert allowed.reason == "scheduled"
    assert allowed.country == "US"
    assert inactive.reason == "partner_inactive"
    assert inactive.country == "US"


def test_event_own_country_wins_over_install() -> None:
    _, (blocked, _) = run(DecisionEngine(), us_only_purchase_config(),
                          [install(country="US"), event("Purchase", T0 + DAY, country="DE")])

    assert blocked.reason == "country_not_allowed"
    assert blocked.country == "DE"


def test_install_records_its_own_country() -> None:
    ((decision,),) = run(DecisionEngine(), us_only_purchase_config(), [install(country="FR")])

    assert decision.country == "FR"


def test_unknown_country_records_none() -> None:
    _, (allowed, _) = run(DecisionEngine(), us_only_purchase_config(), [install(), event("Purchase", T0 + DAY)])

    assert allowed.reason == "country_unknown"
    assert allowed.country is None


def test_event_without_install_records_none() -> None:
    ((allowed, _),) = run(DecisionEngine(), us_only_purchase_config(), [event("Purchase", T0)])

    assert allowed.reason == "country_unknown"
    assert allowed.country is None


def test_decision_country_survives_encoding() -> None:
    _, decisions = run(DecisionEngine(), us_only_purchase_config(), [install(country="US"), event("Purchase", T0 + 1)])
    record = Decided(event_seq=2, app="app1", event_id="p", decisions=decisions)

    decoded = decode_record(encode_record(record))

    assert decoded == record
    assert [d.country for d in decoded.decisions] == ["US", "US"]
