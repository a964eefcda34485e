"""Configuration commands: apps, partners and postbacks."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from postbackd.daemon._commands import CommandContext, CommandError, command, require
from postbackd.eventlog import (
    AppConfig,
    AppConfigured,
    PartnerConfig,
    PartnerConfigured,
    PostbackConfig,
    PostbackConfigured,
    Record,
)
from postbackd.integrations import IntegrationError

# Ids of apps and networks: letters, digits, and . _ - after the first character.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Android package name: at least two dot-separated segments starting with a letter.
ANDROID_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
# iOS bundle id: reverse-DNS segments of letters, digits and hyphens.
IOS_BUNDLE_ID = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
DELIVERY_METHODS = ("all", "network", "network+agency")


def check_id(value: str, what: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise CommandError(
            f"Invalid {what} {value!r}: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    return value


def check_bundle_id(platform: str, bundle_id: str) -> str:
    if platform == "android" and not ANDROID_PACKAGE.fullmatch(bundle_id):
        raise CommandError(
            f"Invalid bundle id {bundle_id!r} for android: expected a package name such as 'com.example.app'."
        )
    if platform == "ios" and not IOS_BUNDLE_ID.fullmatch(bundle_id):
        raise CommandError(f"Invalid bundle id {bundle_id!r} for ios: expected a bundle id such as 'com.example.App'.")
    return bundle_id


def check_platform(platform: str) -> str:
    if platform not in ("android", "ios"):
        raise CommandError(f"Invalid platform {platform!r}: use 'android' or 'ios'.")
    return platform


def known_app(ctx: CommandContext, app_id: str) -> AppConfig:
    app = ctx.config.apps.get(app_id)
    if app is None:
        known = ", ".join(sorted(ctx.config.apps)) or "none yet"
        raise CommandError(f"Unknown app {app_id!r} (registered apps: {known}). Add it with `postbackd app add`.")
    return app


def known_partner(ctx: CommandContext, app_id: str, network: str) -> PartnerConfig:
    known_app(ctx, app_id)
    partner = ctx.config.partners.get((app_id, network))
    if partner is None:
        raise CommandError(
            f"Unknown partner {network!r} for app {app_id!r}. Add it with `postbackd partner add {app_id} {network}`."
        )
    return partner


@command("app.add")
def app_add(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    app_id = check_id(require(args, "app_id"), "app id")
    if app_id in ctx.config.apps:
        raise CommandError(f"App {app_id!r} exists already. Change it with `postbackd app set {app_id}`.")
    platform = check_platform(require(args, "platform"))
    bundle_id = check_bundle_id(platform, require(args, "bundle_id"))
    name = require(args, "name").strip()
    if not name:
        raise CommandError("Invalid name '': give the app's display name.")
    app = AppConfig(app_id=app_id, platform=platform, bundle_id=bundle_id, name=name)
    return [AppConfigured(app=app, origin=ctx.origin)], msgspec.to_builtins(app)


def parse_fields(items: list[str] | dict[str, str] | None) -> dict[str, str]:
    """Parse repeated NAME=VALUE options into a dict."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return dict(items)
    fields: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CommandError(f"Invalid field {item!r}: use NAME=VALUE, for example url=https://example.com/pb.")
        fields[name.strip()] = value
    return fields


@command("partner.add")
def partner_add(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    app_id = require(args, "app_id")
    known_app(ctx, app_id)
    network = check_id(require(args, "network"), "network")
    if (app_id, network) in ctx.config.partners:
        raise CommandError(
            f"Partner {network!r} exists already for app {app_id!r}. Change it with `postbackd partner set`."
        )
    integration_id = args.get("integration") or network
    try:
        integration = ctx.core.catalog.get(integration_id)
    except IntegrationError as exc:
        raise CommandError(str(exc)) from None
    fields = parse_fields(args.get("fields"))
    try:
        integration.check_fields(fields)
    except IntegrationError as exc:
        raise CommandError(str(exc)) from None
    partner = PartnerConfig(app_id=app_id, network=network, integration=integration.id, fields=fields)
    return [PartnerConfigured(partner=partner, origin=ctx.origin)], {"app_id": app_id, "network": network}


@command("postback.add")
def postback_add(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    app_id = require(args, "app_id")
    network = require(args, "network")
    known_partner(ctx, app_id, network)
    event = require(args, "event").strip()
    if not event:
        raise CommandError("Invalid event '': give 'install' or a post-install event name.")
    if (app_id, network, event) in ctx.config.postbacks:
        raise CommandError(
            f"Postback {event!r} exists already for partner {network!r} of app {app_id!r}. "
            f"Change it with `postbackd postback set`."
        )
    method = args.get("method") or "network"
    if method not in DELIVERY_METHODS:
        raise CommandError(f"Invalid delivery method {method!r}: use all, network or network+agency.")
    postback = PostbackConfig(app_id=app_id, network=network, event=event, method=method)
    return [PostbackConfigured(postback=postback, origin=ctx.origin)], msgspec.to_builtins(postback)
