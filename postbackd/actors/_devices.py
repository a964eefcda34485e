"""Per-device state and the decision engine that drives it.

A device actor is a small state object, not a task: a million devices must fit
in a few hundred megabytes, and a trio task costs several kilobytes. One
decision loop owns every device state and feeds it the log in sequence order.

``DecisionEngine.decide`` is pure: it reads the configuration, the device state
and the event. ``DecisionEngine.apply`` changes the device state from an event
and the decisions taken for it, so a rebuild from recorded decisions gives the
same state as the process that took them.
"""

from __future__ import annotations

import hashlib

from postbackd.actors._config import ConfigState
from postbackd.eventlog import Decision, Event


def postback_id_for(app: str, event_id: str, network: str) -> str:
    """Return the stable postback id of one partner's postback for one event."""
    digest = hashlib.blake2b(f"{app}\x00{event_id}\x00{network}".encode(), digest_size=10)
    return "pb_" + digest.hexdigest()


class DeviceState:
    """What the rules need to know about one device."""

    __slots__ = ("install_time", "install_network", "install_agency")

    def __init__(self) -> None:
        self.install_time: float | None = None
        self.install_network: str | None = None
        self.install_agency: str | None = None


class DecisionEngine:
    def __init__(self) -> None:
        self.devices: dict[tuple[str, str], DeviceState] = {}

    def decide(self, config: ConfigState, event: Event, received: float) -> tuple[Decision, ...]:
        """Decide, for every partner of the event's app, whether its postback is sent."""
        postback_event = "install" if event.type == "install" else event.name
        if event.type == "reengagement" or postback_event is None:
            return ()
        device = self.devices.get((event.app, event.device))

        if event.type == "install":
            attribution = event.attribution
            owner = attribution.network if attribution else None
            attribution_type = "install" if owner else "unattributed"
        else:
            owner = device.install_network if device else None
            attribution_type = "install" if owner else "unattributed"

        decisions = []
        for partner in config.partners_of(event.app):
            postback = config.postback_for(event.app, partner.network, postback_event)
            if postback is None:
                continue
            reason = "scheduled"
            if not partner.active:
                reason = "partner_inactive"
            elif postback.method != "all" and owner != partner.network:
                reason = "not_attributed"
            scheduled = reason == "scheduled"
            decisions.append(
                Decision(
                    network=partner.network,
                    postback=postback_event,
                    outcome="scheduled" if scheduled else "suppressed",
                    reason=reason,
                    postback_id=postback_id_for(event.app, event.id, partner.network) if scheduled else None,
                    attribution_type=attribution_type,
                    attribution_network=owner,
                    due=received + postback.delay if scheduled else None,
                )
            )
        return tuple(decisions)

    def apply(self, event: Event, decisions: tuple[Decision, ...]) -> None:
        """Update the device state from an event and the decisions taken for it."""
        if event.type != "install":
            return
        key = (event.app, event.device)
        device = self.devices.get(key)
        if device is None:
            device = self.devices[key] = DeviceState()
        if device.install_time is not None:
            return
        device.install_time = event.time
        if event.attribution is not None:
            device.install_network = event.attribution.network
            device.install_agency = event.attribution.agency
