"""One-line descriptions of configuration changes, for ``config history``, ``config import`` and command results.

A change is described against the configuration just before it, so a
``PartnerConfigured`` record that carries a partner's full new state reads
as the settings it changed. Values of secret network-specific fields are
shown as ``***``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from postbackd.actors import ConfigState
from postbackd.daemon._config_checks import describe_countries
from postbackd.daemon._settings import format_duration
from postbackd.eventlog import (
    AppConfig,
    AppConfigured,
    PartnerConfig,
    PartnerConfigured,
    PartnerRemoved,
    PostbackConfig,
    PostbackConfigured,
    PostbackRemoved,
    Record,
)
from postbackd.integrations import MASK

# Returns the secret field names of a partner's integration, or None when the
# integration is unknown and every field value has to be treated as secret.
SecretNames = Callable[[PartnerConfig], "frozenset[str] | None"]

# One described setting: label, raw value for comparison, text to show.
Item = tuple[str, object, str]


def quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def app_items(app: AppConfig) -> list[Item]:
    return [
        ("platform", app.platform, app.platform),
        ("bundle id", app.bundle_id, app.bundle_id),
        ("name", app.name, quoted(app.name)),
    ]


def partner_items(partner: PartnerConfig, secrets: frozenset[str] | None) -> list[Item]:
    items: list[Item] = [
        ("integration", partner.integration, partner.integration),
        ("active", partner.active, yes_no(partner.active)),
        ("data-controlled flag", partner.respect_data_controlled,
         "respected" if partner.respect_data_controlled else "ignored"),
        ("country filter", partner.countries, describe_countries(partner.countries)),
        ("country filter for all events", partner.apply_countries_to_all_events,
         yes_no(partner.apply_countries_to_all_events)),
    ]
    for name in sorted(partner.fields):
        value = partner.fields[name]
        shown = MASK if secrets is None or name in secrets else quoted(value)
        items.append((f"field {name}", value, shown))
    return items


def postback_items(postback: PostbackConfig) -> list[Item]:
    items: list[Item] = [
        ("delay", postback.delay, format_duration(postback.delay)),
        ("retries", postback.retries, str(postback.retries)),
        ("method", postback.method, postback.method),
        ("country filter", postback.countries, describe_countries(postback.countries)),
    ]
    if postback.partner_event_name is not None:
        items.append(("partner event name", postback.partner_event_name, quoted(postback.partner_event_name)))
    return items


def describe_items(subject: str, after: list[Item], before: list[Item] | None) -> str:
    """Describe an added thing by all its settings, a changed one by the settings that differ."""
    if before is None:
        return f"add {subject}: " + "; ".join(f"{label} {shown}" for label, _, shown in after)
    old = {label: (raw, shown) for label, raw, shown in before}
    new = {label: (raw, shown) for label, raw, shown in after}
    changes = []
    for label, raw, shown in after:
        if label not in old:
            changes.append(f"{label} {shown} (new)")
        elif old[label][0] != raw:
            if old[label][1] == shown:
                changes.append(f"{label} changed (secret, not shown)")
            else:
                changes.append(f"{label} {old[label][1]} -> {shown}")
    changes.extend(f"{label} removed" for label, _, _ in before if label not in new)
    return f"set {subject}: " + ("; ".join(changes) if changes else "no change")


def union_secrets(first: frozenset[str] | None, second: frozenset[str] | None) -> frozenset[str] | None:
    if first is None or second is None:
        return None
    return first | second


def describe_change(config: ConfigState, record: Record, secret_names: SecretNames) -> str:
    """Describe ``record`` as a change of ``config``, the state just before it."""
    match record:
        case AppConfigured(app=app):
            before_app = config.apps.get(app.app_id)
            return describe_items(
                f"app {app.app_id}", app_items(app), None if before_app is None else app_items(before_app)
            )
        case PartnerConfigured(partner=partner):
            subject = f"partner {partner.network} of app {partner.app_id}"
            before_partner = config.partners.get((partner.app_id, partner.network))
            if before_partner is None:
                return describe_items(subject, partner_items(partner, secret_names(partner)), None)
            secrets = union_secrets(secret_names(partner), secret_names(before_partner))
            return describe_items(subject, partner_items(partner, secrets), partner_items(before_partner, secrets))
        case PartnerRemoved(app_id=app_id, network=network):
            events = [postback.event for postback in config.postbacks_of(app_id, network)]
            with_postbacks = f" and its postbacks {', '.join(events)}" if events else ""
            return f"remove partner {network} of app {app_id}{with_postbacks}"
        case PostbackConfigured(postback=postback):
            subject = f"postback {postback.event} of partner {postback.network} of app {postback.app_id}"
            before_postback = config.postback_for(postback.app_id, postback.network, postback.event)
            return describe_items(
                subject,
                postback_items(postback),
                None if before_postback is None else postback_items(before_postback),
            )
        case PostbackRemoved(app_id=app_id, network=network, event=event):
            return f"remove postback {event} of partner {network} of app {app_id}"
    return f"{type(record).__name__} (not a configuration change)"
