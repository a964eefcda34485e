"""The decision engine: per-device state and the decisions taken from it.

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
import math
import sys

from postbackd.actors._config import ConfigState
from postbackd.actors._device_state import DeviceState, DeviceTable, InstallFacts, Reengagement
from postbackd.actors._rules import SESSION_BEGIN, judge, resolved_country
from postbackd.eventlog import Decision, Event

# Postback key of the install postback; event postbacks are keyed by event name.
INSTALL_POSTBACK = "install"


def postback_id_for(app: str, event_id: str, network: str) -> str:
    """Return the stable postback id of one partner's postback for one event."""
    digest = hashlib.blake2b(f"{app}\x00{event_id}\x00{network}".encode(), digest_size=10)
    return "pb_" + digest.hexdigest()


def _intern(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)


class DecisionEngine:
    """Decides the postbacks of each event and keeps the device state they depend on.

    ``devices`` maps (app id, device id) to a ``DeviceState``. A device gets a
    state with its first install or reengagement. Ordinary events change no
    state, and a SessionBegin event only uses a window.
    """

    def __init__(self) -> None:
        self.devices = DeviceTable()
        # Shared InstallFacts objects, one per distinct attribution and country.
        self._install_facts: dict[InstallFacts, InstallFacts] = {}

    def device(self, app: str, device_id: str) -> DeviceState | None:
        """Return the state of one device of an app, None if nothing is known about it."""
        return self.devices.get((app, device_id))

    def decide(self, config: ConfigState, event: Event, received: float) -> tuple[Decision, ...]:
        """Decide, for every partner of the event's app, whether its postback is sent.

        Returns one decision per partner that has a postback for the event, in
        network order. Reengagements have no postback, so they get none. Every
        decision records the country the rules resolved for the event, also
        those that failed a rule checked before the country filter.
        Raises ValueError when the event time is not a finite number.
        """
        if not math.isfinite(event.time):
            raise ValueError(
                f"Event {event.id!r} has the time {event.time!r}, which is not a finite number; "
                "send the event time as epoch seconds."
            )
        postback_key = _postback_key(event)
        if postback_key is None:
            return ()
        targets = config.targets_of(event.app, postback_key)
        if not targets:
            return ()
        device = self.device(event.app, event.device)
        country = resolved_country(event, device)

        decisions = []
        for partner, postback in targets:
            verdict = judge(partner, postback, event, device)
            scheduled = verdict.reason == "scheduled"
            decisions.append(
                Decision(
                    network=partner.network,
                    postback=postback_key,
                    outcome="scheduled" if scheduled else "suppressed",
                    reason=verdict.reason,
                    postback_id=postback_id_for(event.app, event.id, partner.network) if scheduled else None,
                    attribution_type=verdict.owner.type,
                    attribution_network=verdict.owner.network,
                    attribution_agency=verdict.owner.agency,
                    due=received + postback.delay if scheduled else None,
                    session_window=verdict.session_window,
                    country=country,
                )
            )
        return tuple(decisions)

    def apply(self, event: Event, decisions: tuple[Decision, ...]) -> None:
        """Update the device state from an event and the decisions taken for it.

        Installs and reengagements change the state whatever the decisions
        were. A scheduled SessionBegin decision uses its window. Raises
        ValueError when a scheduled SessionBegin decision cannot have been
        taken from this state: it names no window, or the device has no install.
        """
        match event.type:
            case "install":
                self._apply_install(event)
            case "reengagement":
                self._apply_reengagement(event)
            case "event" if event.name == SESSION_BEGIN:
                self._apply_session(event, decisions)

    def _apply_install(self, event: Event) -> None:
        device = self.devices.setdefault(event.app, event.device)
        if device.install is not None:
            # A reinstall keeps the first install's time and attribution.
            return
        attribution = event.attribution
        facts = InstallFacts(
            network=_intern(attribution.network) if attribution is not None else None,
            agency=_intern(attribution.agency) if attribution is not None else None,
            country=_intern(event.country),
        )
        device.install_time = event.time
        device.install = self._install_facts.setdefault(facts, facts)

    def _apply_reengagement(self, event: Event) -> None:
        attribution = event.attribution
        if attribution is None or attribution.network is None:
            # NOTE: a reengagement names the network that won the device back;
            # one without a network changes neither the owner nor the anchor.
            return
        reengagement = Reengagement(event.time, sys.intern(attribution.network), _intern(attribution.agency))
        self.devices.setdefault(event.app, event.device).add_reengagement(reengagement)

    def _apply_session(self, event: Event, decisions: tuple[Decision, ...]) -> None:
        for decision in decisions:
            if decision.outcome != "scheduled":
                continue
            window = decision.session_window
            if window is None or window < 1:
                raise ValueError(
                    f"The scheduled SessionBegin decision for network {decision.network!r} on event "
                    f"{event.id!r} has the session window {window!r}; a scheduled SessionBegin decision "
                    "needs a window of 1 or more, so the decision record is invalid."
                )
            device = self.device(event.app, event.device)
            if device is None or device.install is None:
                raise ValueError(
                    f"The SessionBegin decision for network {decision.network!r} on event {event.id!r} "
                    f"is scheduled, but device {event.device!r} of app {event.app!r} has no install; "
                    "apply the decisions in log order, starting from an empty engine or a snapshot."
                )
            device.mark_window(event.time, sys.intern(decision.network), window)


def _postback_key(event: Event) -> str | None:
    """Return the key of the postback configured for ``event``, None when it has none."""
    if event.type == "install":
        return INSTALL_POSTBACK
    if event.type == "reengagement" or event.name is None:
        return None
    if event.name == INSTALL_POSTBACK:
        # NOTE: an event named "install" would collide with the install
        # postback, so it gets no postback at all.
        return None
    return event.name
