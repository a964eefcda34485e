"""DecisionEngine.decide and apply: decision fields, device state, purity and bad input."""

from __future__ import annotations

import copy
import math

import msgspec
import pytest

from postbackd.actors import DecisionEngine, DeviceState, postback_id_for
from postbackd.actors._config import MAX_CACHED_TARGETS
from postbackd.eventlog import CountryFilter, Decision, Event, PartnerRemoved, PostbackConfigured, PostbackRemoved

from .builders import APP, DAY, HOUR, T0, event, install, make_config, partner, postback, reengagement, run, session


def test_decide_one_per_partner() -> None:
    config = make_config(
        [partner("netC"), partner("netA"), partner("netB")],
        [postback("Purchase", "netC"), postback("Purchase", "netA"), postback("install", "netB")],
    )

    decisions = DecisionEngine().decide(config, event("Purchase", T0), received=T0)

    assert [d.network for d in decisions] == ["netA", "netC"]
    assert [d.postback for d in decisions] == ["Purchase", "Purchase"]


def test_decide_scheduled_fields() -> None:
    config = make_config([partner("netA")], [postback("install", "netA", delay=120.0, method="all")])
    item = install(network="netA", agency="agency1", id="ev-1")

    (decision,) = DecisionEngine().decide(config, item, received=T0 + 5)

    assert decision.outcome == "scheduled"
    assert decision.reason == "scheduled"
    assert decision.postback == "install"
    assert decision.postback_id == postback_id_for(APP, "ev-1", "netA")
    assert decision.due == T0 + 5 + 120.0
    assert decision.attribution_type == "install"
    assert decision.attribution_network == "netA"
    assert decision.attribution_agency == "agency1"
    assert decision.session_window is None


def test_suppressed_decision_fields() -> None:
    config = make_config([partner("netA", active=False)], [postback("install", "netA", delay=60.0)])

    (decision,) = DecisionEngine().decide(config, install(network="netA"), received=T0)

    assert decision.outcome == "suppressed"
    assert decision.postback_id is None
    assert decision.due is None


def test_decide_due_uses_received_time() -> None:
    config = make_config([partner("netA")], [postback("Purchase", "netA", method="all", delay=30.0)])

    (decision,) = DecisionEngine().decide(config, event("Purchase", T0 - DAY), received=T0)

    assert decision.due == T0 + 30.0


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(reengagement(T0, "netA"), id="reengagement"),
        pytest.param(event("Purchase", T0), id="no-postback-for-event"),
        pytest.param(Event(app=APP, id="e1", type="event", device="d1", time=T0), id="event-without-name"),
        pytest.param(event("install", T0), id="event-named-install"),
        pytest.param(Event(app="other-app", id="e2", type="install", device="d1", time=T0), id="app-without-partners"),
    ],
)
def test_decide_returns_nothing(item: Event) -> None:
    config = make_config([partner("netA")], [postback("install", "netA", method="all")])

    assert DecisionEngine().decide(config, item, received=T0) == ()


def test_decide_does_not_change_state() -> None:
    config = make_config(
        [partner("netA")],
        [postback(name, "netA", method="all") for name in ("install", "SessionBegin", "Purchase")],
    )
    engine = DecisionEngine()
    run(engine, config, [install(network="netA", country="US"), reengagement(T0 + 2 * DAY, "netA")])
    before = msgspec.msgpack.encode(engine.devices.apps)

    for item in [install(T0 + DAY), session(T0 + 3 * DAY), event("Purchase", T0), install(device="d2")]:
        engine.decide(config, item, received=item.time)

    assert msgspec.msgpack.encode(engine.devices.apps) == before


def test_reinstall_keeps_first_install() -> None:
    config = make_config([partner("netA"), partner("netB")], [postback("Purchase", "netA"), postback("Purchase", "netB")])
    engine = DecisionEngine()
    run(engine, config, [install(network="netA", country="US"), install(T0 + DAY, network="netB", country="DE")])

    state = engine.device(APP, "d1")
    decisions = engine.decide(config, event("Purchase", T0 + 2 * DAY), received=T0)

    assert state is not None
    assert state.install_time == T0
    assert state.install is not None
    assert state.install.network == "netA"
    assert state.install.country == "US"
    assert [d.reason for d in decisions] == ["scheduled", "not_attributed"]


def test_install_after_events() -> None:
    config = make_config([partner("netA")], [postback("Purchase", "netA"), postback("SessionBegin", "netA", method="all")])
    engine = DecisionEngine()

    early = run(engine, config, [event("Purchase", T0 + HOUR), session(T0 + DAY)])
    run(engine, config, [install(T0, network="netA")])
    late = run(engine, config, [event("Purchase", T0 + HOUR), session(T0 + DAY)])

    assert [d[0].reason for d in early] == ["not_attributed", "install_unknown"]
    assert [d[0].reason for d in late] == ["scheduled", "scheduled"]


def test_apply_records_reengagement() -> None:
    engine = DecisionEngine()

    engine.apply(reengagement(T0, "netA", "agency1"), ())

    state = engine.device(APP, "d1")
    assert state is not None
    assert state.install is None
    assert state.reengagements is not None
    assert [(r.time, r.network, r.agency) for r in state.reengagements] == [(T0, "netA", "agency1")]


def test_apply_sorts_late_reengagement() -> None:
    engine = DecisionEngine()

    for time in (T0 + 3 * DAY, T0 + DAY, T0 + 2 * DAY):
        engine.apply(reengagement(time, "netA"), ())

    state = engine.device(APP, "d1")
    assert state is not None
    assert [r.time for r in state.reengagements or ()] == [T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY]


def test_ordinary_events_keep_no_state() -> None:
    config = make_config([partner("netA")], [postback("Purchase", "netA", method="all")])
    engine = DecisionEngine()

    run(engine, config, [event("Purchase", T0), session(T0 + DAY)])

    assert engine.device(APP, "d1") is None


def test_late_reengagement_moves_anchor() -> None:
    config = make_config([partner("netA")], [postback("SessionBegin", "netA")])
    engine = DecisionEngine()
    run(engine, config, [install(network="netA"), session(T0 + 1.5 * DAY)])

    run(engine, config, [reengagement(T0 + DAY, "netA")])
    repeat, after = run(engine, config, [session(T0 + 1.2 * DAY), session(T0 + 2.1 * DAY)])

    assert (repeat[0].reason, repeat[0].session_window) == ("session_too_early", None)
    assert (after[0].reason, after[0].session_window) == ("scheduled", 1)


def test_windows_are_per_partner() -> None:
    config = make_config(
        [partner("netA"), partner("netB")],
        [
            postback("SessionBegin", "netA", method="all"),
            postback("SessionBegin", "netB", method="all", countries=CountryFilter(mode="block", countries=("US",))),
        ],
    )
    engine = DecisionEngine()
    run(engine, config, [install(network="netA")])

    first, second = run(engine, config, [session(T0 + DAY, country="US"), session(T0 + DAY + HOUR, country="DE")])

    assert [(d.network, d.reason) for d in first] == [("netA", "scheduled"), ("netB", "country_blocked")]
    assert [(d.network, d.reason) for d in second] == [("netA", "session_window_used"), ("netB", "scheduled")]


def test_postback_id_is_stable_per_network() -> None:
    first = postback_id_for(APP, "ev-1", "netA")

    assert first == postback_id_for(APP, "ev-1", "netA")
    assert first != postback_id_for(APP, "ev-1", "netB")
    assert first != postback_id_for(APP, "ev-2", "netA")
    assert first.startswith("pb_")


def test_state_round_trips_through_msgpack() -> None:
    config = make_config([partner("netA")], [postback("SessionBegin", "netA", method="all")])
    engine = DecisionEngine()
    run(
        engine,
        config,
        [install(network="netA", country="US"), session(T0 + DAY), reengagement(T0 + 2 * DAY, "netB"), session(T0 + 3 * DAY)],
    )

    data = msgspec.msgpack.encode(engine.devices.apps)

    assert msgspec.msgpack.decode(data, type=dict[str, dict[str, DeviceState]]) == engine.devices.apps


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad_time", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "minus-inf"])
def test_decide_rejects_non_finite_time(bad_time: float) -> None:
    config = make_config([partner("netA")], [postback("Purchase", "netA")])

    with pytest.raises(ValueError, match=r"Event 'e1' has the time .* not a finite number; send the event time as epoch seconds"):
        DecisionEngine().decide(config, event("Purchase", bad_time, id="e1"), received=T0)


def _scheduled_session(window: int | None) -> Decision:
    return Decision(
        network="netA",
        postback="SessionBegin",
        outcome="scheduled",
        reason="scheduled",
        postback_id="pb_1",
        due=T0,
        session_window=window,
    )


@pytest.mark.parametrize("window", [None, 0, -1], ids=["none", "zero", "negative"])
def test_apply_rejects_missing_window(window: int | None) -> None:
    engine = DecisionEngine()
    engine.apply(install(network="netA"), ())

    with pytest.raises(ValueError, match=rf"network 'netA' on event 's1' has the session window {window}; .* needs a window of 1 or more"):
        engine.apply(session(T0 + DAY, id="s1"), (_scheduled_session(window),))


def test_apply_rejects_session_without_install() -> None:
    engine = DecisionEngine()

    with pytest.raises(ValueError, match=r"is scheduled, but device 'd1' of app 'app1' has no install; apply the decisions in log order"):
        engine.apply(session(T0 + DAY, id="s1"), (_scheduled_session(1),))


def test_apply_ignores_suppressed_sessions() -> None:
    engine = DecisionEngine()
    suppressed = Decision(network="netA", postback="SessionBegin", outcome="suppressed", reason="install_unknown")

    engine.apply(session(T0 + DAY), (suppressed,))

    assert engine.device(APP, "d1") is None


def test_session_example_from_rules_doc() -> None:
    config = make_config([partner("netA")], [postback("SessionBegin", "netA")])
    engine = DecisionEngine()
    run(engine, config, [install(network="netA")])
    reengaged = T0 + 2 * DAY + 14 * HOUR
    # T0 is 4 December 10:00 UTC; each item is (event, reason, window), and a
    # reengagement has no decision.
    steps = [
        (session(T0 + 8 * HOUR), "session_too_early", None),
        (session(T0 + DAY - 1), "session_too_early", None),
        (session(T0 + DAY), "scheduled", 1),
        (session(T0 + DAY + 12 * HOUR), "session_window_used", 1),
        (session(T0 + 2 * DAY), "scheduled", 2),
        (reengagement(reengaged, "netB"), None, None),
        (session(reengaged + 12 * HOUR), "session_too_early", None),
        (session(reengaged + DAY), "scheduled", 1),
        (session(T0 + DAY + 5 * HOUR), "session_window_used", 1),
    ]

    decided = run(engine, config, [item for item, _, _ in steps])

    got = [(d[0].reason, d[0].session_window) if d else (None, None) for d in decided]
    assert got == [(reason, window) for _, reason, window in steps]
    assert (decided[7][0].attribution_type, decided[7][0].attribution_network) == ("install", "netA")


def test_devices_keyed_by_app_and_device() -> None:
    config = make_config([partner("netA")], [postback("install", "netA")])
    engine = DecisionEngine()

    run(engine, config, [install(device="d1"), install(device="d2"), install(device="d1", app="app2")])

    assert len(engine.devices) == 3
    assert sorted(engine.devices) == [("app1", "d1"), ("app1", "d2"), ("app2", "d1")]
    assert engine.devices[("app2", "d1")].install_time == T0
    assert ("app2", "d2") not in engine.devices
    assert engine.device("app2", "d2") is None


def test_shallow_copy_keeps_old_state() -> None:
    config = make_config([partner("netA")], [postback("SessionBegin", "netA", method="all")])
    engine = DecisionEngine()
    run(engine, config, [install(network="netA"), reengagement(T0 + DAY, "netB"), session(T0 + 2.5 * DAY)])
    state = engine.device(APP, "d1")
    assert state is not None
    saved = copy.copy(state)
    encoded = msgspec.msgpack.encode(saved)

    run(engine, config, [session(T0 + 3.5 * DAY), reengagement(T0 + 1.5 * DAY, "netA"), install(T0 + 4 * DAY)])
    run(engine, config, [session(T0 + 1.2 * DAY)])

    assert msgspec.msgpack.encode(saved) == encoded
    assert saved != state


def test_decide_follows_postback_changes_after_a_first_decision() -> None:
    """Decisions read the postbacks through a cache; every configuration change must reach them."""
    config = make_config([partner("netA"), partner("netB")], [postback("Purchase", "netA")])
    engine = DecisionEngine()

    assert [d.network for d in engine.decide(config, event("Purchase", T0), received=T0)] == ["netA"]
    config.apply(10, PostbackConfigured(postback("Purchase", "netB")))
    assert [d.network for d in engine.decide(config, event("Purchase", T0), received=T0)] == ["netA", "netB"]
    config.apply(11, PostbackRemoved(app_id=APP, network="netA", event="Purchase"))
    assert [d.network for d in engine.decide(config, event("Purchase", T0), received=T0)] == ["netB"]
    config.apply(12, PartnerRemoved(app_id=APP, network="netB"))
    assert engine.decide(config, event("Purchase", T0), received=T0) == ()


def test_targets_cache_stays_bounded_with_many_event_names() -> None:
    config = make_config([partner("netA")], [postback("Purchase", "netA")])
    engine = DecisionEngine()

    for number in range(MAX_CACHED_TARGETS + 5):
        assert engine.decide(config, event(f"name-{number}", T0), received=T0) == ()

    assert len(config._targets) <= MAX_CACHED_TARGETS
    assert [d.network for d in engine.decide(config, event("Purchase", T0), received=T0)] == ["netA"]
