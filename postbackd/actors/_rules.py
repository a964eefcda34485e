"""The rules that decide whether one partner's postback about one event is sent.

``judge`` checks the rules in a fixed order and returns the first that fails
as the reason. The order is part of the contract, because operators read the
reason to learn why a postback was not sent:

1. ``partner_inactive``: the partner is switched off.
2. ``duplicate_install``: an install for a device that already has one.
3. ``not_attributed``: the delivery method does not cover the event's owner.
4. ``data_controlled``: the partner respects the data-controlled flag and the
   event carries it.
5. ``country_blocked``, ``country_not_allowed``, ``country_unknown``: the
   country filter rejects the event's country.
6. ``install_unknown``, ``session_too_early``, ``session_window_used``: the
   SessionBegin window rules.

Everything else is ``scheduled``.
"""

from __future__ import annotations

from typing import NamedTuple

from postbackd.actors._device_state import UNATTRIBUTED, DeviceState, Owner
from postbackd.eventlog import Attribution, CountryFilter, Event, PartnerConfig, PostbackConfig

# Event name of the sessions that get at most one postback per SessionBegin window.
SESSION_BEGIN = "SessionBegin"

# Length of one SessionBegin window, in seconds.
SESSION_WINDOW = 86400.0

REASON_CODES = (
    "scheduled",
    "partner_inactive",
    "duplicate_install",
    "not_attributed",
    "data_controlled",
    "country_blocked",
    "country_not_allowed",
    "country_unknown",
    "install_unknown",
    "session_too_early",
    "session_window_used",
)


class Verdict(NamedTuple):
    """The reason code of one decision, the attribution it used and its SessionBegin window."""

    reason: str
    owner: Owner
    session_window: int | None = None


def judge(
    partner: PartnerConfig,
    postback: PostbackConfig,
    event: Event,
    device: DeviceState | None,
) -> Verdict:
    """Check the rules for one partner's postback about ``event``, in order."""
    is_install = event.type == "install"
    is_session = event.type == "event" and event.name == SESSION_BEGIN
    owner, attributed = _attribution(postback, event, device, is_session)

    if not partner.active:
        return Verdict("partner_inactive", owner)
    if is_install and device is not None and device.install is not None:
        return Verdict("duplicate_install", owner)
    if not attributed:
        return Verdict("not_attributed", owner)
    if partner.respect_data_controlled and event.data_controlled:
        return Verdict("data_controlled", owner)

    if is_install or partner.apply_countries_to_all_events:
        country_filter = partner.countries
    else:
        country_filter = postback.countries
    country_failure = country_reason(country_filter, resolved_country(event, device))
    if country_failure is not None:
        return Verdict(country_failure, owner)

    if is_session:
        return _session_verdict(partner.network, event.time, device, owner)
    return Verdict("scheduled", owner)


def resolved_country(event: Event, device: DeviceState | None) -> str | None:
    """Return the country the rules use for ``event``: its own, else its device's install's, else None."""
    if event.country is not None:
        return event.country
    if device is not None and device.install is not None:
        return device.install.country
    return None


def country_reason(country_filter: CountryFilter, country: str | None) -> str | None:
    """Return the reason code for which the filter rejects ``country``, or None if it passes.

    ``country`` None means unknown. An allow list rejects an unknown country,
    while a block list lets it pass. The mode ``allow_all`` treats the countries
    it lists as a block list, the same as ``block``.
    """
    if country_filter.mode == "allow_only":
        if country is None:
            return "country_unknown"
        if country not in country_filter.countries:
            return "country_not_allowed"
        return None
    if country is not None and country in country_filter.countries:
        return "country_blocked"
    return None


def method_covers(method: str, network: str, owner: Owner) -> bool:
    """Return whether a postback with delivery ``method`` for ``network`` covers ``owner``."""
    if method == "all":
        return True
    if owner.network != network:
        return False
    return method == "network+agency" or owner.agency is None


def _attribution(
    postback: PostbackConfig,
    event: Event,
    device: DeviceState | None,
    is_session: bool,
) -> tuple[Owner, bool]:
    """Find the attribution a decision uses and whether the delivery method covers it.

    An install is owned by its own attribution and a later event by the
    latest conversion. A SessionBegin postback is covered when any conversion
    that counts at the event time is covered; the decision then reports the
    latest such conversion.
    """
    method, network = postback.method, postback.network
    if event.type == "install":
        owner = _install_owner(event.attribution)
        return owner, method_covers(method, network, owner)

    latest = device.owner_at(event.time) if device is not None else UNATTRIBUTED
    if not is_session or method == "all":
        return latest, method_covers(method, network, latest)

    covered = None
    if device is not None:
        covered = device.latest_owner_matching(event.time, lambda owner: method_covers(method, network, owner))
    if covered is None:
        return latest, False
    return covered, True


def _install_owner(attribution: Attribution | None) -> Owner:
    if attribution is None or attribution.network is None:
        return UNATTRIBUTED
    return Owner("install", attribution.network, attribution.agency)


def _session_verdict(network: str, time: float, device: DeviceState | None, owner: Owner) -> Verdict:
    anchor = device.anchor_at(time) if device is not None else None
    if device is None or anchor is None:
        return Verdict("install_unknown", owner)

    # Epoch times of this century are within a factor of two of each other, so
    # their difference is exact in floating point (Sterbenz lemma). An event
    # exactly k days after the anchor therefore falls in window k, not k - 1.
    window = int((time - anchor) // SESSION_WINDOW)
    if window < 1:
        return Verdict("session_too_early", owner)
    if device.window_used(time, network, window):
        return Verdict("session_window_used", owner, window)
    return Verdict("scheduled", owner, window)
