"""One row per rule and boundary: the reason code of partner netA's postback about one event."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from postbackd.actors import REASON_CODES, DecisionEngine
from postbackd.eventlog import CountryFilter, Event

from .builders import DAY, HOUR, T0, event, install, make_config, partner, postback, reengagement, run, session


class Case(NamedTuple):
    history: tuple[Event, ...]
    event: Event
    reason: str
    partner: dict = {}
    postback: dict = {}
    window: int | None = None
    # Expected (attribution_type, attribution_network, attribution_agency), when checked.
    attribution: tuple[str, str | None, str | None] | None = None


BLOCK_US = CountryFilter(mode="block", countries=("US",))
ALLOW_DE = CountryFilter(mode="allow_only", countries=("DE",))
ALLOW_US = CountryFilter(mode="allow_only", countries=("US",))
ALL_WITH_US_LISTED = CountryFilter(mode="allow_all", countries=("US",))

INSTALL_A = install(network="netA", country="US")
INSTALL_B = install(network="netB", country="US")
INSTALL_A_AGENCY = install(network="netA", agency="agency1", country="US")
INSTALL_ORGANIC = install(country="US")
ALL = {"method": "all"}
NETWORK = {"method": "network"}
NETWORK_AGENCY = {"method": "network+agency"}

CASES = [
    # Rule 1: partner status.
    pytest.param(Case((), INSTALL_A, "partner_inactive", partner={"active": False}), id="inactive-partner-install"),
    pytest.param(
        Case((INSTALL_A,), event("Purchase", T0 + HOUR), "partner_inactive", partner={"active": False}),
        id="inactive-partner-event",
    ),
    pytest.param(
        Case((INSTALL_A,), install(T0 + DAY, network="netA"), "partner_inactive", partner={"active": False}),
        id="inactive-before-duplicate-install",
    ),
    # Rule 2: reinstalls.
    pytest.param(Case((), INSTALL_A, "scheduled", attribution=("install", "netA", None)), id="first-install"),
    pytest.param(
        Case((INSTALL_A,), install(T0 + DAY, network="netA"), "duplicate_install"), id="reinstall-same-network"
    ),
    pytest.param(
        Case((INSTALL_B,), install(T0 + DAY, network="netA"), "duplicate_install", postback=ALL),
        id="reinstall-other-network",
    ),
    pytest.param(
        Case((INSTALL_A,), install(T0 - DAY, network="netA"), "duplicate_install"), id="reinstall-with-earlier-time"
    ),
    # Rule 3: delivery method, installs.
    pytest.param(Case((), INSTALL_B, "not_attributed", attribution=("install", "netB", None)), id="install-other-network"),
    pytest.param(Case((), INSTALL_ORGANIC, "not_attributed"), id="organic-install-network-method"),
    pytest.param(
        Case((), INSTALL_ORGANIC, "scheduled", postback=ALL, attribution=("unattributed", None, None)),
        id="organic-install-all-method",
    ),
    pytest.param(Case((), INSTALL_B, "scheduled", postback=ALL), id="other-network-install-all-method"),
    pytest.param(Case((), INSTALL_A_AGENCY, "not_attributed", postback=NETWORK), id="agency-install-network-method"),
    pytest.param(
        Case((), INSTALL_A_AGENCY, "scheduled", postback=NETWORK_AGENCY, attribution=("install", "netA", "agency1")),
        id="agency-install-network-agency-method",
    ),
    pytest.param(Case((), INSTALL_A, "scheduled", postback=NETWORK_AGENCY), id="direct-install-network-agency-method"),
    pytest.param(
        Case((), install(network="netB", agency="agency1"), "not_attributed", postback=NETWORK_AGENCY),
        id="agency-install-of-other-network",
    ),
    # Rule 3: delivery method, events.
    pytest.param(
        Case((INSTALL_A,), event("Purchase", T0 + HOUR), "scheduled", attribution=("install", "netA", None)),
        id="event-after-own-install",
    ),
    pytest.param(Case((INSTALL_B,), event("Purchase", T0 + HOUR), "not_attributed"), id="event-after-other-install"),
    pytest.param(
        Case(
            (INSTALL_B, reengagement(T0 + DAY, "netA")),
            event("Purchase", T0 + 2 * DAY),
            "scheduled",
            attribution=("reengagement", "netA", None),
        ),
        id="event-after-own-reengagement",
    ),
    pytest.param(
        Case(
            (INSTALL_A, reengagement(T0 + DAY, "netB")),
            event("Purchase", T0 + 2 * DAY),
            "not_attributed",
            attribution=("reengagement", "netB", None),
        ),
        id="event-after-other-reengagement",
    ),
    pytest.param(
        Case(
            (INSTALL_A, reengagement(T0 + DAY, "netB")),
            event("Purchase", T0 + DAY - 1),
            "scheduled",
            attribution=("install", "netA", None),
        ),
        id="event-before-reengagement-time",
    ),
    pytest.param(
        Case((INSTALL_B, reengagement(T0 + DAY, "netA")), event("Purchase", T0 + DAY), "scheduled"),
        id="event-at-reengagement-time",
    ),
    pytest.param(
        Case(
            (INSTALL_B, reengagement(T0 + DAY, "netA", "agency1")),
            event("Purchase", T0 + 2 * DAY),
            "not_attributed",
            postback=NETWORK,
        ),
        id="event-after-agency-reengagement-network",
    ),
    pytest.param(
        Case(
            (INSTALL_B, reengagement(T0 + DAY, "netA", "agency1")),
            event("Purchase", T0 + 2 * DAY),
            "scheduled",
            postback=NETWORK_AGENCY,
            attribution=("reengagement", "netA", "agency1"),
        ),
        id="event-after-agency-reengagement-net-agency",
    ),
    pytest.param(
        Case((INSTALL_A, reengagement(T0 + DAY, None)), event("Purchase", T0 + 2 * DAY), "scheduled"),
        id="reengagement-without-network-ignored",
    ),
    pytest.param(
        Case(
            (reengagement(T0 - DAY, "netB"), INSTALL_A),
            event("Purchase", T0 + HOUR),
            "scheduled",
            attribution=("install", "netA", None),
        ),
        id="install-later-than-reengagement-owns",
    ),
    pytest.param(Case((), event("Purchase", T0), "not_attributed"), id="event-without-install-network"),
    pytest.param(
        Case((), event("Purchase", T0), "scheduled", postback=ALL, attribution=("unattributed", None, None)),
        id="event-without-install-all",
    ),
    pytest.param(
        Case((INSTALL_A,), event("Purchase", T0 - HOUR), "scheduled", attribution=("install", "netA", None)),
        id="event-before-install-time",
    ),
    # Rule 4: data-controlled flag.
    pytest.param(
        Case((), install(network="netA", data_controlled=True), "data_controlled"), id="data-controlled-respected"
    ),
    pytest.param(
        Case((), install(network="netA", data_controlled=True), "scheduled", partner={"respect_data_controlled": False}),
        id="data-controlled-not-respected",
    ),
    pytest.param(
        Case((INSTALL_A,), event("Purchase", T0 + HOUR, data_controlled=True), "data_controlled"),
        id="data-controlled-event",
    ),
    pytest.param(Case((), install(network="netA"), "scheduled"), id="not-data-controlled"),
    pytest.param(
        Case((), install(network="netB", data_controlled=True), "not_attributed"), id="attribution-before-data-controlled"
    ),
    # Rule 5: country filter, install postback.
    pytest.param(Case((), INSTALL_A, "country_blocked", partner={"countries": BLOCK_US}), id="install-country-blocked"),
    pytest.param(
        Case((), install(network="netA", country="DE"), "scheduled", partner={"countries": BLOCK_US}),
        id="install-country-not-blocked",
    ),
    pytest.param(
        Case((), install(network="netA"), "scheduled", partner={"countries": BLOCK_US}), id="unknown-country-block-list"
    ),
    pytest.param(
        Case((), INSTALL_A, "country_not_allowed", partner={"countries": ALLOW_DE}), id="install-country-not-allowed"
    ),
    pytest.param(Case((), INSTALL_A, "scheduled", partner={"countries": ALLOW_US}), id="install-country-allowed"),
    pytest.param(
        Case((), install(network="netA"), "country_unknown", partner={"countries": ALLOW_US}),
        id="unknown-country-allow-list",
    ),
    pytest.param(Case((), install(network="netA"), "scheduled"), id="unknown-country-allow-all"),
    pytest.param(
        Case((), INSTALL_A, "country_blocked", partner={"countries": ALL_WITH_US_LISTED}), id="allow-all-list-blocks"
    ),
    pytest.param(
        Case((), INSTALL_A, "scheduled", postback={"countries": ALLOW_DE}), id="install-ignores-postback-filter"
    ),
    pytest.param(
        Case((), install(network="netA", country="US", data_controlled=True), "data_controlled", partner={"countries": BLOCK_US}),
        id="data-controlled-before-country",
    ),
    # Rule 5: country filter, event postbacks.
    pytest.param(
        Case(
            (INSTALL_A,),
            event("Purchase", T0 + HOUR, country="US"),
            "country_blocked",
            partner={"countries": BLOCK_US, "apply_countries_to_all_events": True},
        ),
        id="partner-filter-applied-to-events",
    ),
    pytest.param(
        Case((INSTALL_A,), event("Purchase", T0 + HOUR, country="US"), "scheduled", partner={"countries": BLOCK_US}),
        id="partner-filter-not-applied-to-events",
    ),
    pytest.param(
        Case((INSTALL_A,), event("Purchase", T0 + HOUR, country="US"), "country_blocked", postback={"countries": BLOCK_US}),
        id="postback-filter-blocks-event",
    ),
    pytest.param(
        Case(
            (INSTALL_A,),
            event("Purchase", T0 + HOUR, country="US"),
            "scheduled",
            partner={"apply_countries_to_all_events": True},
            postback={"countries": BLOCK_US},
        ),
        id="partner-filter-replaces-postback-filter",
    ),
    pytest.param(
        Case((INSTALL_A,), event("Purchase", T0 + HOUR), "country_blocked", postback={"countries": BLOCK_US}),
        id="event-uses-install-country",
    ),
    pytest.param(
        Case((INSTALL_A,), event("Purchase", T0 + HOUR, country="DE"), "scheduled", postback={"countries": BLOCK_US}),
        id="event-country-overrides-install",
    ),
    pytest.param(
        Case((install(network="netA"),), event("Purchase", T0 + HOUR), "country_unknown", postback={"countries": ALLOW_US}),
        id="event-unknown-country-allow-list",
    ),
    pytest.param(
        Case((install(network="netA"),), event("Purchase", T0 + HOUR), "scheduled", postback={"countries": BLOCK_US}),
        id="event-unknown-country-block-list",
    ),
    # Rule 6: SessionBegin windows.
    pytest.param(
        Case((INSTALL_A,), session(T0 + DAY), "scheduled", window=1, attribution=("install", "netA", None)),
        id="session-exactly-24h",
    ),
    pytest.param(Case((INSTALL_A,), session(T0 + DAY - 1), "session_too_early"), id="session-1s-before-24h"),
    pytest.param(Case((INSTALL_A,), session(T0 + HOUR), "session_too_early"), id="session-first-day"),
    pytest.param(Case((INSTALL_A,), session(T0 - HOUR), "session_too_early"), id="session-before-install-time"),
    pytest.param(Case((INSTALL_A,), session(T0 + 2 * DAY), "scheduled", window=2), id="session-window-edge"),
    pytest.param(
        Case((INSTALL_A, session(T0 + DAY)), session(T0 + 2 * DAY - 1), "session_window_used", window=1),
        id="session-window-used",
    ),
    pytest.param(
        Case((INSTALL_A, session(T0 + DAY)), session(T0 + 2 * DAY), "scheduled", window=2),
        id="session-next-window-at-edge",
    ),
    pytest.param(
        Case((INSTALL_A, session(T0 + 5 * DAY)), session(T0 + 1.5 * DAY), "scheduled", window=1),
        id="session-out-of-order-unused-window",
    ),
    pytest.param(
        Case((INSTALL_A, session(T0 + 1.2 * DAY)), session(T0 + 1.1 * DAY), "session_window_used", window=1),
        id="session-out-of-order-used-window",
    ),
    pytest.param(Case((), session(T0), "install_unknown", postback=ALL), id="session-install-unknown"),
    pytest.param(
        Case((reengagement(T0 - 2 * DAY, "netA"),), session(T0), "install_unknown"),
        id="session-reengagement-without-install",
    ),
    pytest.param(Case((), session(T0), "not_attributed"), id="session-no-conversion-network"),
    pytest.param(
        Case((INSTALL_A, reengagement(T0 + 2.5 * DAY, "netA")), session(T0 + 3 * DAY), "session_too_early"),
        id="session-reengagement-day3-moves-anchor",
    ),
    pytest.param(
        Case((INSTALL_A, reengagement(T0 + 2.5 * DAY, "netA")), session(T0 + 3.5 * DAY), "scheduled", window=1),
        id="session-window-restarts-after-reengagement",
    ),
    pytest.param(
        Case(
            (INSTALL_A, session(T0 + 1.5 * DAY), reengagement(T0 + 2.5 * DAY, "netA")),
            session(T0 + 3.5 * DAY),
            "scheduled",
            window=1,
        ),
        id="session-window-1-again-after-reengagement",
    ),
    pytest.param(
        Case((reengagement(T0 - DAY, "netA"), INSTALL_A), session(T0 + DAY), "scheduled", window=1),
        id="session-install-later-than-reengagement-anchors",
    ),
    pytest.param(
        Case((INSTALL_A, reengagement(T0 + 3 * DAY, "netA")), session(T0 + 1.5 * DAY), "scheduled", window=1),
        id="session-before-later-reengagement",
    ),
    pytest.param(
        Case((INSTALL_A, reengagement(T0 + 2.5 * DAY, None)), session(T0 + 3 * DAY), "scheduled", window=3),
        id="session-reengagement-without-network",
    ),
    pytest.param(
        Case(
            (INSTALL_B, reengagement(T0 + DAY, "netA")),
            session(T0 + 2 * DAY),
            "scheduled",
            window=1,
            attribution=("reengagement", "netA", None),
        ),
        id="session-own-reengagement-qualifies",
    ),
    pytest.param(
        Case((INSTALL_B, reengagement(T0 + 3 * DAY, "netA")), session(T0 + 2 * DAY), "not_attributed"),
        id="session-later-reengagement-does-not-qualify",
    ),
    pytest.param(
        Case(
            (INSTALL_A, reengagement(T0 + DAY, "netB")),
            session(T0 + 2.5 * DAY),
            "scheduled",
            window=1,
            attribution=("install", "netA", None),
        ),
        id="session-own-install-qualifies-after-other",
    ),
    pytest.param(
        Case((INSTALL_A_AGENCY,), session(T0 + DAY), "not_attributed", postback=NETWORK),
        id="session-agency-install-network",
    ),
    pytest.param(
        Case((INSTALL_A_AGENCY,), session(T0 + DAY), "scheduled", postback=NETWORK_AGENCY, window=1),
        id="session-agency-install-network-agency",
    ),
    pytest.param(
        Case(
            (INSTALL_ORGANIC,),
            session(T0 + DAY),
            "scheduled",
            postback=ALL,
            window=1,
            attribution=("unattributed", None, None),
        ),
        id="session-organic-all",
    ),
    pytest.param(Case((INSTALL_ORGANIC,), session(T0 + DAY), "not_attributed"), id="session-organic-network"),
    pytest.param(
        Case((INSTALL_A,), session(T0 + DAY - 1, data_controlled=True), "data_controlled"),
        id="data-controlled-before-session-window",
    ),
    pytest.param(
        Case((INSTALL_A,), session(T0 + DAY - 1), "country_blocked", postback={"countries": BLOCK_US}),
        id="country-before-session-window",
    ),
    pytest.param(
        Case((INSTALL_A,), session(T0 + DAY - 1), "partner_inactive", partner={"active": False}),
        id="inactive-before-session-window",
    ),
    # Rule 7: events with no window.
    pytest.param(Case((INSTALL_A, event("App Open", T0 + HOUR)), event("App Open", T0 + HOUR + 1), "scheduled"), id="app-open-every-time"),
    pytest.param(Case((INSTALL_A,), event("App Open", T0 + 1), "scheduled"), id="app-open-first-day"),
    pytest.param(Case((INSTALL_A,), event("sessionbegin", T0 + 1), "scheduled"), id="session-name-case-sensitive"),
]


def _postback_event(item: Event) -> str:
    return "install" if item.type == "install" else item.name


@pytest.mark.parametrize("case", CASES)
def test_rule(case: Case) -> None:
    postbacks = [postback("install", "netA"), postback("install", "netB")]
    postbacks.append(postback(_postback_event(case.event), "netA", **case.postback))
    config = make_config([partner("netA", **case.partner), partner("netB")], postbacks)
    engine = DecisionEngine()
    run(engine, config, case.history)

    decisions = [d for d in engine.decide(config, case.event, received=case.event.time) if d.network == "netA"]

    assert len(decisions) == 1
    decision = decisions[0]
    assert decision.reason == case.reason
    assert decision.outcome == ("scheduled" if case.reason == "scheduled" else "suppressed")
    assert decision.session_window == case.window
    if case.attribution is not None:
        got = (decision.attribution_type, decision.attribution_network, decision.attribution_agency)
        assert got == case.attribution


def test_table_covers_every_reason_code() -> None:
    covered = {param.values[0].reason for param in CASES}
    assert covered == set(REASON_CODES)
