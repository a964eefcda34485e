"""Read a ``config import`` file into the configuration it describes, listing every problem of it.

The file is read key by key instead of being decoded in one go, so that one
run lists every problem. An unknown or mistyped key does not hide the
problems of the other keys of its table, nor those of the tables below it.
Each setting is checked on its own with the checks of the single commands,
and a check that needs another setting runs only when that one is valid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import tomli_w

from postbackd.actors import ConfigState
from postbackd.daemon._commands import CommandError
from postbackd.daemon._config_checks import (
    INSTALL,
    check_bundle_id,
    check_event,
    check_id,
    check_install_countries,
    check_method,
    check_partner_event_name,
    check_platform,
    check_retries,
    check_text,
    country_filter_entry,
    integration_of,
    parse_delay,
    parse_field_options,
    secret_names,
    suggest,
)
from postbackd.eventlog import AppConfig, CountryFilter, PartnerConfig, PostbackConfig
from postbackd.integrations import MASK, Catalog, Integration, IntegrationError

# A TOML key that needs no quotes.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Marks a key that a table must have.
REQUIRED = object()

# The keys of each kind of table: the type of its value and its default.
_TOP_KEYS: dict[str, tuple[Any, Any]] = {
    "apps": (dict[str, Any], {}),
}
_APP_KEYS: dict[str, tuple[Any, Any]] = {
    "platform": (str, REQUIRED),
    "bundle_id": (str, REQUIRED),
    "name": (str, REQUIRED),
    "partners": (dict[str, Any], {}),
}
_PARTNER_KEYS: dict[str, tuple[Any, Any]] = {
    "integration": (str | None, None),
    "active": (bool, True),
    "respect_data_controlled": (bool, True),
    "apply_countries_to_all_events": (bool, False),
    "block": (list[str] | None, None),
    "allow_only": (list[str] | None, None),
    "fields": (dict[str, str], {}),
    "postbacks": (dict[str, Any], {}),
}
_POSTBACK_KEYS: dict[str, tuple[Any, Any]] = {
    "delay": (str | int | float, "0s"),
    "retries": (int, 3),
    "method": (str, "network"),
    "block": (list[str] | None, None),
    "allow_only": (list[str] | None, None),
    "partner_event_name": (str | None, None),
}


def toml_key(key: str) -> str:
    """Return ``key`` as it is written in a TOML table header: bare when it can be, else quoted."""
    return key if _BARE_KEY.fullmatch(key) else tomli_w.dumps({key: 0}).split(" = ")[0]


class _Table:
    """One table of the import file: where it is, its valid values, and whether everything in it is valid."""

    def __init__(self, problems: list[str], where: str) -> None:
        self.problems = problems
        self.where = where
        self.values: dict[str, Any] = {}
        self.valid = True

    def add_problem(self, message: str, where: str | None = None) -> None:
        self.problems.append(f"[{where or self.where}] {message}")
        self.valid = False

    def read(self, data: Any, keys: Mapping[str, tuple[Any, Any]]) -> bool:
        """Check every key of ``data`` against ``keys``; return False when ``data`` is not a table at all."""
        if not isinstance(data, dict):
            self.add_problem(f"Expected a table, got `{type(data).__name__}`.")
            return False
        for key in data:
            if key not in keys:
                hint = suggest(key, keys) or f" Valid keys here: {', '.join(keys)}."
                self.add_problem(f"Unknown key {key!r}.{hint}")
        for key, (kind, default) in keys.items():
            if key not in data:
                if default is REQUIRED:
                    self.add_problem(f"Missing key {key!r}.")
                else:
                    self.values[key] = default
                continue
            try:
                self.values[key] = msgspec.convert(data[key], kind)
            except msgspec.ValidationError as exc:
                text, sep, path = str(exc).partition(" - at `$")
                location = f"{self.where}.{toml_key(key)}" + (path.rstrip("`").replace("[...]", "") if sep else "")
                self.add_problem(f"{text}.", location)
        return True

    def has(self, *keys: str) -> bool:
        return all(key in self.values for key in keys)

    def check(self, function: Callable[..., Any], *args: Any) -> Any:
        """Return ``function(*args)``; a ``CommandError`` becomes a problem of this table and returns None."""
        try:
            return function(*args)
        except CommandError as exc:
            self.add_problem(str(exc))
            return None


class Importer:
    """Builds the configuration an import file describes, as ``target``, and collects its ``problems``."""

    def __init__(self, current: ConfigState, catalog: Catalog) -> None:
        self.current = current
        self.catalog = catalog
        self.target = ConfigState()
        self.problems: list[str] = []

    def read(self, data: dict[str, Any]) -> None:
        table = _Table(self.problems, "top level")
        table.read(data, _TOP_KEYS)
        apps = table.values.get("apps", {})
        for app_id, app_data in apps.items():
            self._read_app(app_id, app_data, f"apps.{toml_key(app_id)}")
        missing = sorted(set(self.current.apps) - set(apps)) if table.has("apps") else []
        if missing:
            self.problems.append(
                f"[apps] The file leaves out app(s) {', '.join(missing)}, but apps cannot be removed. "
                "Keep them in the file; an app without partners sends nothing."
            )

    def _read_app(self, app_id: str, data: Any, where: str) -> None:
        table = _Table(self.problems, where)
        if not table.read(data, _APP_KEYS):
            return
        values = table.values
        table.check(check_id, app_id, "app id")
        if table.has("platform") and table.check(check_platform, values["platform"]) and table.has("bundle_id"):
            table.check(check_bundle_id, values["platform"], values["bundle_id"])
        name = table.check(check_text, values["name"], "app name") if table.has("name") else None
        for network, partner_data in values.get("partners", {}).items():
            self._read_partner(app_id, network, partner_data, f"{where}.partners.{toml_key(network)}")
        if table.valid:
            self.target.apps[app_id] = AppConfig(
                app_id=app_id, platform=values["platform"], bundle_id=values["bundle_id"], name=name
            )

    def _read_partner(self, app_id: str, network: str, data: Any, where: str) -> None:
        table = _Table(self.problems, where)
        if not table.read(data, _PARTNER_KEYS):
            return
        values = table.values
        table.check(check_id, network, "network")

        integration: Integration | None = None
        integration_id = values.get("integration") or network
        if table.has("integration"):
            integration = table.check(integration_of, self.catalog, integration_id)

        countries = None
        if table.has("block", "allow_only"):
            countries = table.check(country_filter_entry, values["block"], values["allow_only"])
        fields = None
        if table.has("fields"):
            fields = table.check(self._fields, app_id, network, integration_id, values["fields"])
        if integration is not None and fields is not None:
            try:
                integration.check_fields(fields)
            except IntegrationError as exc:
                table.add_problem(str(exc))

        for event, postback_data in values.get("postbacks", {}).items():
            self._read_postback(app_id, network, event, integration, postback_data,
                                f"{where}.postbacks.{toml_key(event)}")

        if table.valid:
            self.target.partners[(app_id, network)] = PartnerConfig(
                app_id=app_id,
                network=network,
                integration=integration_id,
                fields=fields,
                active=values["active"],
                respect_data_controlled=values["respect_data_controlled"],
                countries=countries,
                apply_countries_to_all_events=values["apply_countries_to_all_events"],
            )

    def _read_postback(
        self, app_id: str, network: str, event: str, integration: Integration | None, data: Any, where: str
    ) -> None:
        table = _Table(self.problems, where)
        if not table.read(data, _POSTBACK_KEYS):
            return
        values = table.values
        name = table.check(check_event, event)
        delay = table.check(parse_delay, values["delay"]) if table.has("delay") else None
        if table.has("retries"):
            table.check(check_retries, values["retries"])
        if table.has("method"):
            table.check(check_method, values["method"])
        countries = None
        if table.has("block", "allow_only"):
            countries = table.check(country_filter_entry, values["block"], values["allow_only"])
        # The checks that look at several settings get the valid ones, with defaults for the others.
        probe = PostbackConfig(
            app_id=app_id,
            network=network,
            event=name or event,
            countries=countries or CountryFilter(),
            partner_event_name=values.get("partner_event_name"),
        )
        if name == INSTALL and countries is not None:
            table.check(check_install_countries, probe)
        if table.has("partner_event_name"):
            table.check(check_partner_event_name, integration, probe)
        if table.valid:
            self.target.postbacks[(app_id, network, name)] = msgspec.structs.replace(
                probe, delay=delay, retries=values["retries"], method=values["method"]
            )

    def _fields(self, app_id: str, network: str, integration_id: str, entry: dict[str, str]) -> dict[str, str]:
        """Return the entry's fields with each masked secret replaced by the current value."""
        fields = parse_field_options(entry)
        current = self.current.partners.get((app_id, network))
        probe = PartnerConfig(app_id=app_id, network=network, integration=integration_id)
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
