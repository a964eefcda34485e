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

import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import tomli_w

from postbackd.actors import ConfigState
from postbackd.daemon._commands import CommandContext, CommandError, command
from postbackd.daemon._config_checks import (
    check_app,
    check_event,
    check_partner,
    check_postback,
    country_filter_entry,
    parse_delay,
    parse_field_options,
    secret_names,
)
from postbackd.daemon._config_describe import describe_change
from postbackd.daemon._config_views import mask_fields
from postbackd.daemon._settings import format_duration
from postbackd.eventlog import (
    AppConfig,
    AppConfigured,
    CountryFilter,
    Origin,
    PartnerConfig,
    PartnerConfigured,
    PartnerRemoved,
    PostbackConfig,
    PostbackConfigured,
    PostbackRemoved,
    Record,
)
from postbackd.integrations import MASK, Catalog

HEADER = """\
# postbackd configuration: apps, their partners and the partners' postbacks.
# Apply it with `postbackd config import FILE`: the daemon changes its
# configuration to match this file. A secret network-specific field written
# as "***" keeps the value the daemon has.

"""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _PostbackEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    delay: str | int | float = "0s"
    retries: int = 3
    method: str = "network"
    block: list[str] | None = None
    allow_only: list[str] | None = None
    partner_event_name: str | None = None


class _PartnerEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    integration: str | None = None
    active: bool = True
    respect_data_controlled: bool = True
    apply_countries_to_all_events: bool = False
    block: list[str] | None = None
    allow_only: list[str] | None = None
    fields: dict[str, str] = {}
    postbacks: dict[str, dict[str, Any]] = {}


class _AppEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    platform: str
    bundle_id: str
    name: str
    partners: dict[str, dict[str, Any]] = {}


class _ConfigFile(msgspec.Struct, forbid_unknown_fields=True):
    apps: dict[str, dict[str, Any]] = {}


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


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else tomli_w.dumps({key: 0}).split(" = ")[0]


class _Problems:
    """Collects the problems of an import file, each with the table it is in."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    @contextmanager
    def at(self, where: str) -> Iterator[None]:
        try:
            yield
        except CommandError as exc:
            self.messages.append(f"[{where}] {exc}")

    def convert(self, data: Any, kind: type, where: str) -> Any:
        try:
            return msgspec.convert(data, kind)
        except msgspec.ValidationError as exc:
            text = str(exc)
            text, sep, path = text.partition(" - at `$")
            location = where + path.rstrip("`").replace("[...]", "") if sep else where
            self.messages.append(f"[{location}] {text}.")
            return None


class _Importer:
    """Builds the desired configuration from a parsed import file."""

    def __init__(self, current: ConfigState, catalog: Catalog) -> None:
        self.current = current
        self.catalog = catalog
        self.target = ConfigState()
        self.problems = _Problems()

    def read(self, data: dict[str, Any]) -> None:
        config_file = self.problems.convert(data, _ConfigFile, "top level")
        if config_file is None:
            return
        for app_id, app_data in config_file.apps.items():
            self._read_app(app_id, app_data, f"apps.{toml_key(app_id)}")
        missing = sorted(set(self.current.apps) - set(config_file.apps))
        if missing:
            self.problems.messages.append(
                f"[apps] The file leaves out app(s) {', '.join(missing)}, but apps cannot be removed. "
                "Keep them in the file; an app without partners sends nothing."
            )

    def _read_app(self, app_id: str, data: Any, where: str) -> None:
        entry = self.problems.convert(data, _AppEntry, where)
        if entry is None:
            return
        app = AppConfig(app_id=app_id, platform=entry.platform, bundle_id=entry.bundle_id, name=entry.name.strip())
        with self.problems.at(where):
            check_app(app)
            self.target.apps[app_id] = app
        for network, partner_data in entry.partners.items():
            self._read_partner(app_id, network, partner_data, f"{where}.partners.{toml_key(network)}")

    def _read_partner(self, app_id: str, network: str, data: Any, where: str) -> None:
        entry = self.problems.convert(data, _PartnerEntry, where)
        if entry is None:
            return
        integration = None
        with self.problems.at(where):
            partner = PartnerConfig(
                app_id=app_id,
                network=network,
                integration=entry.integration or network,
                fields=self._fields(app_id, network, entry),
                active=entry.active,
                respect_data_controlled=entry.respect_data_controlled,
                countries=country_filter_entry(entry.block, entry.allow_only),
                apply_countries_to_all_events=entry.apply_countries_to_all_events,
            )
            integration = check_partner(self.catalog, partner)
            self.target.partners[(app_id, network)] = partner
        for event, postback_data in entry.postbacks.items():
            where_postback = f"{where}.postbacks.{toml_key(event)}"
            postback_entry = self.problems.convert(postback_data, _PostbackEntry, where_postback)
            if postback_entry is None:
                continue
            with self.problems.at(where_postback):
                postback = PostbackConfig(
                    app_id=app_id,
                    network=network,
                    event=check_event(event),
                    delay=parse_delay(postback_entry.delay),
                    retries=postback_entry.retries,
                    method=postback_entry.method,
                    countries=country_filter_entry(postback_entry.block, postback_entry.allow_only),
                    partner_event_name=postback_entry.partner_event_name,
                )
                if integration is not None:
                    check_postback(integration, postback)
                self.target.postbacks[(app_id, network, postback.event)] = postback

    def _fields(self, app_id: str, network: str, entry: _PartnerEntry) -> dict[str, str]:
        """Return the entry's fields with each masked secret replaced by the current value."""
        fields = parse_field_options(entry.fields)
        current = self.current.partners.get((app_id, network))
        probe = PartnerConfig(app_id=app_id, network=network, integration=entry.integration or network)
        secrets = secret_names(self.catalog, probe) or frozenset()
        for name, value in fields.items():
            if value != MASK or name not in secrets:
                continue
            if current is None or not current.fields.get(name):
                raise CommandError(
                    f"The secret network-specific field {name!r} is masked ('***'), and the daemon has no value "
                    "to keep. Write the value, or export with --show-secrets."
                )
            fields[name] = current.fields[name]
        return fields

    def records(self, origin: Origin) -> list[Record]:
        """Return the records that turn the current configuration into the target one."""
        current, target = self.current, self.target
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
    importer = _Importer(current, catalog)
    importer.read(data)
    if importer.problems.messages:
        count = len(importer.problems.messages)
        raise CommandError(
            f"{source} has {count} problem(s); nothing was changed:\n" + "\n".join(importer.problems.messages)
        )
    records = importer.records(origin)
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
