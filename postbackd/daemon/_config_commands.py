"""Configuration commands that change apps, partners and postbacks.

Each command builds the full new state of one app, partner or postback,
checks it as a whole and returns one record. A command whose result equals
the current state appends nothing. The result names the change in the words
of ``config history``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from postbackd.daemon._commands import CommandContext, CommandError, command, require
from postbackd.daemon._config_checks import (
    check_app,
    check_id,
    check_partner,
    check_postback,
    check_text,
    country_filter_option,
    known_app,
    known_partner,
    known_postback,
    parse_delay,
    parse_field_options,
    secret_names,
)
from postbackd.daemon._config_describe import describe_change
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

# Arguments that name what a command changes, as opposed to settings.
_TARGET_ARGS = frozenset({"app_id", "network", "event"})


def optional(args: dict[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    """Return argument ``name`` or None; raise ``CommandError`` when it has the wrong type."""
    value = args.get(name)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise CommandError(f"Invalid {name} {value!r}: expected {expected}.")
    return value


def require_settings(args: dict[str, Any], what: str) -> None:
    """Raise ``CommandError`` unless ``args`` set at least one setting; ``allow_all`` false sets none."""
    given = [
        name for name, value in args.items()
        if name not in _TARGET_ARGS and value not in (None, []) and not (name == "allow_all" and value is False)
    ]
    if not given:
        raise CommandError(f"Nothing to change: give at least one setting. See `postbackd {what} set --help`.")


def change(ctx: CommandContext, record: Record, unchanged: bool) -> tuple[list[Record], Any]:
    """Return ``record`` to append, or nothing when it would not change anything, with its description."""
    description = describe_change(ctx.config, record, lambda partner: secret_names(ctx.core.catalog, partner))
    return ([] if unchanged else [record]), {"change": description, "changed": not unchanged}


# ---------------------------------------------------------------- apps


@command("app.add")
def app_add(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    app_id = check_id(require(args, "app_id"), "app id")
    if app_id in ctx.config.apps:
        raise CommandError(f"App {app_id!r} exists already. Change it with `postbackd app set {app_id}`.")
    app = AppConfig(
        app_id=app_id,
        platform=require(args, "platform"),
        bundle_id=require(args, "bundle_id"),
        name=check_text(require(args, "name"), "app name"),
    )
    check_app(app)
    return change(ctx, AppConfigured(app=app, origin=ctx.origin), unchanged=False)


@command("app.set")
def app_set(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    current = known_app(ctx.config, require(args, "app_id"))
    require_settings(args, "app")
    updates = {name: optional(args, name) for name in ("platform", "bundle_id", "name")}
    if updates["name"] is not None:
        updates["name"] = check_text(updates["name"], "app name")
    app = msgspec.structs.replace(current, **{name: value for name, value in updates.items() if value is not None})
    check_app(app)
    return change(ctx, AppConfigured(app=app, origin=ctx.origin), unchanged=app == current)


# ---------------------------------------------------------------- partners


def apply_partner_settings(current: PartnerConfig, args: dict[str, Any]) -> PartnerConfig:
    """Return ``current`` with the settings of a ``partner add`` or ``partner set`` command applied."""
    updates: dict[str, Any] = {}
    integration = optional(args, "integration")
    if integration is not None:
        updates["integration"] = integration
    for name in ("active", "respect_data_controlled", "apply_countries_to_all_events"):
        value = optional(args, name, bool)
        if value is not None:
            updates[name] = value
    countries = country_filter_option(args)
    if countries is not None:
        updates["countries"] = countries

    fields = dict(current.fields)
    new_fields = parse_field_options(optional(args, "fields", (list, dict)))
    removed = optional(args, "remove_fields", list) or []
    for name in removed:
        if not isinstance(name, str):
            raise CommandError(f"Invalid remove_fields entry {name!r}: expected a field name.")
        if name in new_fields:
            raise CommandError(
                f"Conflicting options for network-specific field {name!r}: it is both set with --field "
                "and removed with --remove-field. Give only one."
            )
        if name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise CommandError(
                f"Cannot remove network-specific field {name!r} of partner {current.network!r}: it is not set "
                f"(set fields: {known})."
            )
        del fields[name]
    fields.update(new_fields)
    if fields != current.fields:
        updates["fields"] = fields

    return msgspec.structs.replace(current, **updates)


def check_partner_with_postbacks(ctx: CommandContext, partner: PartnerConfig) -> None:
    integration = check_partner(ctx.core.catalog, partner)
    for postback in ctx.config.postbacks_of(partner.app_id, partner.network):
        check_postback(integration, postback)


@command("partner.add")
def partner_add(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    app_id = require(args, "app_id")
    known_app(ctx.config, app_id, adding=True)
    network = check_id(require(args, "network"), "network")
    if (app_id, network) in ctx.config.partners:
        raise CommandError(
            f"Partner {network!r} exists already for app {app_id!r}. "
            f"Change it with `postbackd partner set {app_id} {network}`."
        )
    blank = PartnerConfig(app_id=app_id, network=network, integration=optional(args, "integration") or network)
    if args.get("remove_fields"):
        raise CommandError("Invalid option --remove-field for a new partner: it has no fields yet.")
    partner = apply_partner_settings(blank, args)
    check_partner(ctx.core.catalog, partner)
    return change(ctx, PartnerConfigured(partner=partner, origin=ctx.origin), unchanged=False)


@command("partner.set")
def partner_set(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    current = known_partner(ctx.config, require(args, "app_id"), require(args, "network"))
    require_settings(args, "partner")
    partner = apply_partner_settings(current, args)
    check_partner_with_postbacks(ctx, partner)
    return change(ctx, PartnerConfigured(partner=partner, origin=ctx.origin), unchanged=partner == current)


@command("partner.remove")
def partner_remove(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    partner = known_partner(ctx.config, require(args, "app_id"), require(args, "network"))
    record = PartnerRemoved(app_id=partner.app_id, network=partner.network, origin=ctx.origin)
    records, result = change(ctx, record, unchanged=False)
    actor = ctx.core.actors.get((partner.app_id, partner.network))
    result["pending"] = len(actor.pending) if actor is not None else 0
    return records, result


# ---------------------------------------------------------------- postbacks


def apply_postback_settings(current: PostbackConfig, args: dict[str, Any]) -> PostbackConfig:
    """Return ``current`` with the settings of a ``postback add`` or ``postback set`` command applied."""
    updates: dict[str, Any] = {}
    delay = optional(args, "delay", (str, int, float))
    if delay is not None:
        updates["delay"] = parse_delay(delay)
    retries = optional(args, "retries", int)
    if retries is not None:
        updates["retries"] = retries
    method = optional(args, "method")
    if method is not None:
        updates["method"] = method
    countries = country_filter_option(args)
    if countries is not None:
        updates["countries"] = countries
    partner_event_name = optional(args, "partner_event_name")
    if partner_event_name is not None:
        # An empty name removes the partner event name.
        updates["partner_event_name"] = partner_event_name.strip() or None
    return msgspec.structs.replace(current, **updates)


@command("postback.add")
def postback_add(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    app_id = require(args, "app_id")
    network = require(args, "network")
    partner = known_partner(ctx.config, app_id, network, adding=True)
    event = check_text(require(args, "event"), "event name ('install' or a post-install event name)")
    if ctx.config.postback_for(app_id, network, event) is not None:
        raise CommandError(
            f"Postback {event!r} exists already for partner {network!r} of app {app_id!r}. "
            f"Change it with `postbackd postback set {app_id} {network} {event}`."
        )
    postback = apply_postback_settings(PostbackConfig(app_id=app_id, network=network, event=event), args)
    check_postback(check_partner(ctx.core.catalog, partner), postback)
    return change(ctx, PostbackConfigured(postback=postback, origin=ctx.origin), unchanged=False)


@command("postback.set")
def postback_set(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    app_id = require(args, "app_id")
    network = require(args, "network")
    current = known_postback(ctx.config, app_id, network, require(args, "event"))
    require_settings(args, "postback")
    postback = apply_postback_settings(current, args)
    partner = ctx.config.partners[(app_id, network)]
    check_postback(check_partner(ctx.core.catalog, partner), postback)
    return change(ctx, PostbackConfigured(postback=postback, origin=ctx.origin), unchanged=postback == current)


@command("postback.remove")
def postback_remove(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    postback = known_postback(ctx.config, require(args, "app_id"), require(args, "network"), require(args, "event"))
    record = PostbackRemoved(
        app_id=postback.app_id, network=postback.network, event=postback.event, origin=ctx.origin
    )
    return change(ctx, record, unchanged=False)
