"""Builders for configurations and events used by the decision engine tests."""

from __future__ import annotations

from collections.abc import Iterable

from postbackd.actors import ConfigState, DecisionEngine
from postbackd.eventlog import (
    Attribution,
    Decision,
    Event,
    PartnerConfig,
    PartnerConfigured,
    PostbackConfig,
    PostbackConfigured,
)

APP = "app1"
# 2025-12-04 10:00:00 UTC, the install time of most test devices.
T0 = 1_764_842_400.0
HOUR = 3600.0
DAY = 86400.0


def partner(network: str = "netA", **overrides) -> PartnerConfig:
    return PartnerConfig(app_id=APP, network=network, integration="generic", **overrides)


def postback(event: str, network: str = "netA", **overrides) -> PostbackConfig:
    return PostbackConfig(app_id=APP, network=network, event=event, **overrides)


def make_config(partners: Iterable[PartnerConfig], postbacks: Iterable[PostbackConfig]) -> ConfigState:
    """Build a configuration the way the daemon does: by applying configuration records."""
    config = ConfigState()
    records = [PartnerConfigured(p) for p in partners] + [PostbackConfigured(p) for p in postbacks]
    for seq, record in enumerate(records, start=1):
        assert config.apply(seq, record)
    return config


def _attribution(network: str | None, agency: str | None) -> Attribution | None:
    if network is None and agency is None:
        return None
    return Attribution(network=network, agency=agency)


def install(
    time: float = T0,
    network: str | None = None,
    agency: str | None = None,
    country: str | None = None,
    device: str = "d1",
    **overrides,
) -> Event:
    return Event(
        app=overrides.pop("app", APP),
        id=overrides.pop("id", f"install-{device}-{time}"),
        type="install",
        device=device,
        time=time,
        country=country,
        attribution=_attribution(network, agency),
        **overrides,
    )


def reengagement(time: float, network: str | None, agency: str | None = None, device: str = "d1") -> Event:
    return Event(
        app=APP,
        id=f"reengagement-{device}-{time}",
        type="reengagement",
        device=device,
        time=time,
        attribution=_attribution(network, agency),
    )


def event(name: str, time: float, device: str = "d1", **overrides) -> Event:
    return Event(
        app=APP,
        id=overrides.pop("id", f"{name}-{device}-{time}"),
        type="event",
        name=name,
        device=device,
        time=time,
        **overrides,
    )


def session(time: float, device: str = "d1", **overrides) -> Event:
    return event("SessionBegin", time, device, **overrides)


def run(engine: DecisionEngine, config: ConfigState, events: Iterable[Event]) -> list[tuple[Decision, ...]]:
    """Decide and apply each event in turn, as the daemon's decision loop does."""
    decided = []
    for item in events:
        decisions = engine.decide(config, item, received=item.time)
        engine.apply(item, decisions)
        decided.append(decisions)
    return decided
