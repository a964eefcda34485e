"""Read commands of the configuration: apps, partners, postbacks, integrations and ``config show``.

Results are plain JSON-ready dicts. Values of secret network-specific fields
are replaced by ``***``. A partner whose integration is not in the catalog
has every field value masked, because no loaded file marks which are secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from postbackd.actors import ConfigState
from postbackd.daemon._commands import CommandContext, command, require
from postbackd.daemon._config_checks import (
    describe_countries,
    integration_of,
    known_app,
    known_partner,
    secret_names,
)
from postbackd.daemon._settings import format_duration
from postbackd.eventlog import AppConfig, CountryFilter, PartnerConfig, PostbackConfig, Record
from postbackd.integrations import MASK, Catalog, Integration


def mask_fields(fields: Mapping[str, str], secrets: frozenset[str] | None) -> dict[str, str]:
    return {name: MASK if secrets is None or name in secrets else value for name, value in sorted(fields.items())}


def countries_view(country_filter: CountryFilter) -> dict[str, Any]:
    return {
        "mode": country_filter.mode,
        "countries": list(country_filter.countries),
        "text": describe_countries(country_filter),
    }


def app_view(config: ConfigState, app: AppConfig) -> dict[str, Any]:
    view = msgspec.to_builtins(app)
    view["partners"] = [partner.network for partner in config.partners_of(app.app_id)]
    return view


def postback_view(postback: PostbackConfig) -> dict[str, Any]:
    return {
        "app_id": postback.app_id,
        "network": postback.network,
        "event": postback.event,
        "delay": format_duration(postback.delay),
        "delay_seconds": postback.delay,
        "retries": postback.retries,
        "method": postback.method,
        "countries": countries_view(postback.countries),
        "partner_event_name": postback.partner_event_name,
    }


def partner_view(config: ConfigState, catalog: Catalog, partner: PartnerConfig) -> dict[str, Any]:
    return {
        "app_id": partner.app_id,
        "network": partner.network,
        "integration": partner.integration,
        "active": partner.active,
        "respect_data_controlled": partner.respect_data_controlled,
        "countries": countries_view(partner.countries),
        "apply_countries_to_all_events": partner.apply_countries_to_all_events,
        "fields": mask_fields(partner.fields, secret_names(catalog, partner)),
        "postbacks": [postback_view(p) for p in config.postbacks_of(partner.app_id, partner.network)],
    }


def config_view(config: ConfigState, catalog: Catalog) -> dict[str, Any]:
    apps = []
    for app_id in sorted(config.apps):
        view = app_view(config, config.apps[app_id])
        view["partners"] = [partner_view(config, catalog, p) for p in config.partners_of(app_id)]
        apps.append(view)
    return {"seq": config.seq, "apps": apps}


def integration_view(integration: Integration, detail: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": integration.id,
        "name": integration.name,
        "source": integration.source,
        "event_names": integration.event_names,
        "concurrency": integration.concurrency,
        "required_fields": [field.name for field in integration.fields if field.required],
        "secret_fields": sorted(integration.secret_fields()),
    }
    if detail:
        view["fields"] = [msgspec.to_builtins(field) for field in integration.fields]
        view["partner_template"] = integration.partner_template
        view["install"] = msgspec.to_builtins(integration.install)
        view["event"] = msgspec.to_builtins(integration.event)
    return view


# ---------------------------------------------------------------- read commands


@command("app.list")
def app_list(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    return [], [app_view(ctx.config, ctx.config.apps[app_id]) for app_id in sorted(ctx.config.apps)]


@command("app.show")
def app_show(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    app = known_app(ctx.config, require(args, "app_id"))
    view = app_view(ctx.config, app)
    view["partners"] = [partner_view(ctx.config, ctx.core.catalog, p) for p in ctx.config.partners_of(app.app_id)]
    return [], view


@command("partner.list")
def partner_list(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    app_id = args.get("app_id")
    if app_id is not None:
        known_app(ctx.config, app_id)
        partners = ctx.config.partners_of(app_id)
    else:
        partners = [ctx.config.partners[key] for key in sorted(ctx.config.partners)]
    return [], [partner_view(ctx.config, ctx.core.catalog, partner) for partner in partners]


@command("partner.show")
def partner_show(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    partner = known_partner(ctx.config, require(args, "app_id"), require(args, "network"))
    return [], partner_view(ctx.config, ctx.core.catalog, partner)


@command("config.show")
def config_show(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    return [], config_view(ctx.config, ctx.core.catalog)


@command("integrations.list")
def integrations_list(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    return [], [integration_view(integration) for integration in ctx.core.catalog]


@command("integrations.show")
def integrations_show(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    return [], integration_view(integration_of(ctx.core.catalog, require(args, "integration")), detail=True)
