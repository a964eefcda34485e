"""``config export`` and ``config import``: the whole configuration as one TOML file.

Export writes every app, partner and postback with all of its settings, in a
fixed order, so the same configuration always gives the same file. Import
reads such a file as the desired configuration: it checks all of it with the
checks of the single commands, computes the records that turn the current
configuration into it, and returns their descriptions. Unless it is a dry
run, the control server appends those records in one transaction.

Secret network-specific fields are exported as ``***`` unless secrets are
requested. On import, ``***`` in a secret field keeps the daemon's current
value, so a masked export imports without changes.
"""

from __future__ import annotations

import tomllib
from typing import Any

import tomli_w

from postbackd.actors import ConfigState
from postbackd.daemon._commands import CommandContext, CommandError, command
from postbackd.daemon._config_checks import secret_names
from postbackd.daemon._config_describe import describe_change
from postbackd.daemon._config_import import Importer
from postbackd.daemon._config_views import mask_fields
from postbackd.daemon._settings import format_duration
from postbackd.eventlog import (
    AppConfigured,
    CountryFilter,
    Origin,
    PartnerConfigured,
    PartnerRemoved,
    PostbackConfigured,
    PostbackRemoved,
    Record,
)
from postbackd.integrations import Catalog

HEADER = """\
# postbackd configuration: apps, their partners and the partners' postbacks.
# Apply it with `postbackd config import FILE`: the daemon changes its
# configuration to match this file. A secret network-specific field written
# as "***" keeps the value the daemon has.

"""


# ---------------------------------------------------------------- export


def _countries_entry(country_filter: CountryFilter) -> dict[str, list[str]]:
    if country_filter.mode == "allow_only":
        return {"allow_only": list(country_filter.countries)}
    if country_filter.countries:
        return {"block": list(country_filter.countries)}
    return {}


def export_config(config: ConfigState, catalog: Catalog, show_secrets: bool = False) -> str:
    """Return the whole configuration as TOML text."""
    apps: dict[str, Any] = {}
    for app_id in sorted(config.apps):
        app = config.apps[app_id]
        partners: dict[str, Any] = {}
        for partner in config.partners_of(app_id):
            entry: dict[str, Any] = {
                "integration": partner.integration,
                "active": partner.active,
                "respect_data_controlled": partner.respect_data_controlled,
                "apply_countries_to_all_events": partner.apply_countries_to_all_events,
                **_countries_entry(partner.countries),
            }
            if partner.fields:
                secrets = frozenset() if show_secrets else secret_names(catalog, partner)
                entry["fields"] = mask_fields(partner.fields, secrets)
            postbacks: dict[str, Any] = {}
            for postback in config.postbacks_of(app_id, partner.network):
                postbacks[postback.event] = {
                    "delay": format_duration(postback.delay),
                    "retries": postback.retries,
                    "method": postback.method,
                    **_countries_entry(postback.countries),
                }
                if postback.partner_event_name is not None:
                    postbacks[postback.event]["partner_event_name"] = postback.partner_event_name
            if postbacks:
                entry["postbacks"] = postbacks
            partners[partner.network] = entry
        apps[app_id] = {"platform": app.platform, "bundle_id": app.bundle_id, "name": app.name}
        if partners:
            apps[app_id]["partners"] = partners
    return HEADER + tomli_w.dumps({"apps": apps} if apps else {})


@command("config.export")
def config_export(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    show_secrets = args.get("show_secrets") is True
    return [], {"toml": export_config(ctx.config, ctx.core.catalog, show_secrets), "seq": ctx.config.seq}


# ---------------------------------------------------------------- import


def changes_between(current: ConfigState, target: ConfigState, origin: Origin) -> list[Record]:
    """Return the records that turn the ``current`` configuration into the ``target`` one."""
    records: list[Record] = []
    for app_id, app in sorted(target.apps.items()):
        if current.apps.get(app_id) != app:
            records.append(AppConfigured(app=app, origin=origin))
    for key in sorted(set(current.partners) - set(target.partners)):
        records.append(PartnerRemoved(app_id=key[0], network=key[1], origin=origin))
    for key in sorted(set(current.postbacks) - set(target.postbacks)):
        if key[:2] in target.partners:
            records.append(PostbackRemoved(app_id=key[0], network=key[1], event=key[2], origin=origin))
    for key, partner in sorted(target.partners.items()):
        if current.partners.get(key) != partner:
            records.append(PartnerConfigured(partner=partner, origin=origin))
    for key, postback in sorted(target.postbacks.items()):
        if current.postbacks.get(key) != postback:
            records.append(PostbackConfigured(postback=postback, origin=origin))
    return records


def plan_import(
    text: str, source: str, current: ConfigState, catalog: Catalog, origin: Origin
) -> tuple[list[Record], list[str]]:
    """Parse and check an import file; return its records and their descriptions, or raise ``CommandError``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CommandError(f"Invalid TOML in {source}: {exc}. Fix the file and import it again.") from None
    importer = Importer(current, catalog)
    importer.read(data)
    if importer.problems:
        count = len(importer.problems)
        raise CommandError(f"{source} has {count} problem(s); nothing was changed:\n" + "\n".join(importer.problems))
    records = changes_between(current, importer.target, origin)
    descriptions = []
    state = current.copy()
    for record in records:
        descriptions.append(describe_change(state, record, lambda partner: secret_names(catalog, partner)))
        state.apply(state.seq, record)
    return records, descriptions


@command("config.import")
def config_import(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    text = args.get("toml")
    if not isinstance(text, str):
        raise CommandError("Missing argument 'toml': the text of the configuration file to import.")
    source = args.get("source") if isinstance(args.get("source"), str) else "The import file"
    dry_run = args.get("dry_run") is True
    records, changes = plan_import(text, source, ctx.config, ctx.core.catalog, ctx.origin)
    return ([] if dry_run else records), {"changes": changes, "dry_run": dry_run}
