"""Properties of the decision engine over generated event sequences."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import iso3166
from hypothesis import given
from hypothesis import strategies as st

from postbackd.actors import DecisionEngine
from postbackd.eventlog import CountryFilter, Decided, Event, decode_record, encode_record

from .builders import DAY, T0, event, install, make_config, partner, postback, reengagement, run, session

SESSION_PARTNERS = make_config(
    [partner("netA"), partner("netB"), partner("netC")],
    [
        postback("SessionBegin", "netA", method="all"),
        postback("SessionBegin", "netB", method="network"),
        postback("SessionBegin", "netC", method="network+agency"),
    ],
)


def _scheduled_windows(times: list[float]) -> dict[str, list[int]]:
    engine = DecisionEngine()
    run(engine, SESSION_PARTNERS, [install(network="netB")])
    windows: dict[str, list[int]] = {"netA": [], "netB": [], "netC": []}
    for decisions in run(engine, SESSION_PARTNERS, [session(time) for time in times]):
        for decision in decisions:
            if decision.outcome == "scheduled":
                windows[decision.network].append(decision.session_window)
    return windows


@given(st.lists(st.integers(min_value=-2 * 86400, max_value=40 * 86400), max_size=40))
def test_one_session_postback_per_window(offsets: list[int]) -> None:
    expected = {offset // 86400 for offset in offsets if offset >= 86400}

    windows = _scheduled_windows([T0 + offset for offset in offsets])

    for network in ("netA", "netB"):
        assert len(windows[network]) == len(expected)
        assert set(windows[network]) == expected
    assert windows["netC"] == []


@given(st.lists(st.floats(min_value=-2 * DAY, max_value=40 * DAY, allow_nan=False), max_size=40))
def test_session_windows_with_fractional_times(offsets: list[float]) -> None:
    times = [T0 + offset for offset in offsets]
    days = [(Fraction(time) - Fraction(T0)) / 86400 for time in times]
    expected = {math.floor(day) for day in days if day >= 1}

    windows = _scheduled_windows(times)

    assert Counter(windows["netA"]) == Counter(expected)
    assert Counter(windows["netB"]) == Counter(expected)


# ---------------------------------------------------------------- rebuild

REBUILD_CONFIG = make_config(
    [
        partner("netA"),
        partner("netB", countries=CountryFilter(mode="allow_only", countries=("DE", "US")), apply_countries_to_all_events=True),
        partner("netC", active=False),
    ],
    [
        postback(name, network, method=method)
        for network, method in (("netA", "all"), ("netB", "network+agency"), ("netC", "network"))
        for name in ("install", "SessionBegin", "Purchase")
    ],
)

NETWORKS = st.sampled_from([None, "netA", "netB", "netC"])
COUNTRIES = st.sampled_from([None, "US", "DE", *[country.alpha2 for country in list(iso3166.countries)[:5]]])


@st.composite
def device_events(draw: st.DrawFn) -> list[Event]:
    """Generate installs, reinstalls, reengagements and events of two devices, in any time order."""
    events = []
    for index in range(draw(st.integers(min_value=1, max_value=30))):
        kind = draw(st.sampled_from(["install", "reengagement", "SessionBegin", "Purchase"]))
        time = T0 + draw(st.integers(min_value=-86400, max_value=10 * 86400))
        device = draw(st.sampled_from(["d1", "d2"]))
        network = draw(NETWORKS)
        agency = draw(st.sampled_from([None, "agency1"]))
        country = draw(COUNTRIES)
        flagged = draw(st.booleans())
        if kind == "install":
            item = install(time, network, agency, country, device, id=f"e{index}", data_controlled=flagged)
        elif kind == "reengagement":
            item = reengagement(time, network, agency, device)
        else:
            item = event(kind, time, device, id=f"e{index}", country=country, data_controlled=flagged)
        events.append(item)
    return events


@given(device_events())
def test_rebuild_from_recorded_decisions(events: list[Event]) -> None:
    live = DecisionEngine()
    log = []
    for seq, (item, decisions) in enumerate(zip(events, run(live, REBUILD_CONFIG, events)), start=1):
        log.append(encode_record(item))
        log.append(encode_record(Decided(event_seq=seq, app=item.app, event_id=item.id, decisions=decisions)))

    rebuilt = DecisionEngine()
    records = [decode_record(body) for body in log]
    for item, decided in zip(records[::2], records[1::2]):
        rebuilt.apply(item, decided.decisions)

    assert rebuilt.devices == live.devices
    probe = session(T0 + 11 * DAY)
    assert rebuilt.decide(REBUILD_CONFIG, probe, T0) == live.decide(REBUILD_CONFIG, probe, T0)


@given(device_events())
def test_decisions_cover_every_partner(events: list[Event]) -> None:
    decided = run(DecisionEngine(), REBUILD_CONFIG, events)

    for item, decisions in zip(events, decided):
        if item.type == "reengagement":
            assert decisions == ()
            continue
        assert [d.network for d in decisions] == ["netA", "netB", "netC"]
        for decision in decisions:
            assert (decision.outcome == "scheduled") == (decision.reason == "scheduled")
            assert (decision.postback_id is not None) == (decision.outcome == "scheduled")
            if decision.network == "netC":
                assert decision.reason == "partner_inactive"
