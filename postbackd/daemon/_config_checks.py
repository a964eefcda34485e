"""Checks shared by the configuration commands and ``config import``.

Each check raises ``CommandError`` with a message that names the bad value and
the fix. No message repeats the value of a secret network-specific field.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from postbackd.actors import ConfigState
from postbackd.daemon._commands import CommandError
from postbackd.daemon._inputs import InputError, normalize_country
from postbackd.daemon._settings import DURATION_FORMS, format_duration, parse_duration
from postbackd.eventlog import AppConfig, CountryFilter, PartnerConfig, PostbackConfig
from postbackd.integrations import Catalog, Integration, IntegrationError

# Ids of apps and networks: letters, digits, and . _ - after the first character.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Android package name: at least two dot-separated segments starting with a letter.
ANDROID_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
# iOS bundle id: reverse-DNS segments of letters, digits and hyphens.
IOS_BUNDLE_ID = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
# C0 controls and DEL: they would break log lines, tables and HTTP headers.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")

PLATFORMS = ("android", "ios")
DELIVERY_METHODS = ("all", "network", "network+agency")
# The event name of install postbacks. Every other postback is an event postback.
INSTALL = "install"
# Maximum delivery delay, in seconds. The reference product offers up to 10
# minutes, and postbackd allows up to a day.
MAX_DELAY = 86400.0
# Maximum number of retry attempts after the first attempt.
MAX_RETRIES = 10
# Maximum length of an app name, event name or partner event name, in characters.
MAX_NAME_LENGTH = 512


def check_id(value: str, what: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise CommandError(
            f"Invalid {what} {value!r}: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return value


def check_platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise CommandError(f"Invalid platform {platform!r}: use 'android' or 'ios'.")
    return platform


def check_bundle_id(platform: str, bundle_id: str) -> str:
    if platform == "android" and not ANDROID_PACKAGE.fullmatch(bundle_id):
        raise CommandError(
            f"Invalid bundle id {bundle_id!r} for android: expected a package name such as 'com.example.app'."
        )
    if platform == "ios" and not IOS_BUNDLE_ID.fullmatch(bundle_id):
        raise CommandError(f"Invalid bundle id {bundle_id!r} for ios: expected a bundle id such as 'com.example.App'.")
    return bundle_id


def check_text(value: str, what: str) -> str:
    """Strip ``value`` and check that it is a non-empty line of at most ``MAX_NAME_LENGTH`` characters."""
    text = value.strip()
    if not text:
        raise CommandError(f"Invalid {what} {value!r}: it is empty. Give a non-empty name.")
    if len(text) > MAX_NAME_LENGTH:
        raise CommandError(f"Invalid {what}: {len(text)} characters, at most {MAX_NAME_LENGTH} are allowed.")
    if CONTROL_CHARACTER.search(text):
        raise CommandError(f"Invalid {what} {value!r}: it contains a control character such as a line break.")
    return text


def check_app(app: AppConfig) -> None:
    check_id(app.app_id, "app id")
    check_platform(app.platform)
    check_bundle_id(app.platform, app.bundle_id)
    check_text(app.name, "app name")


def suggest(name: str, known: Iterable[str]) -> str:
    """Return " Did you mean 'x'?" for the known name closest to a mistyped ``name``, or an empty string."""
    known = list(known)
    same_but_case = [candidate for candidate in known if candidate.lower() == name.lower()]
    matches = same_but_case or difflib.get_close_matches(name, known, n=1)
    return f" Did you mean {matches[0]!r}?" if matches else ""


def _missing(what: str, name: str, known: list[str], owner: str, add_hint: str | None) -> CommandError:
    """Return the error for a name that is not configured: a close name, else the known ones, else how to add."""
    close = suggest(name, known)
    if close:
        return CommandError(f"{what} {name!r} does not exist{owner}.{close}")
    listed = ", ".join(known) if known else "none yet"
    hint = f" Add it with `{add_hint}`." if add_hint else ""
    return CommandError(f"{what} {name!r} does not exist{owner} (existing: {listed}).{hint}")


def known_app(config: ConfigState, app_id: str, *, adding: bool = False) -> AppConfig:
    """Return the app ``app_id``; the error suggests `app add` only when ``adding`` something to it."""
    app = config.apps.get(app_id)
    if app is None:
        raise _missing("App", app_id, sorted(config.apps), "", "postbackd app add" if adding else None)
    return app


def known_partner(config: ConfigState, app_id: str, network: str, *, adding: bool = False) -> PartnerConfig:
    """Return the partner ``network`` of ``app_id``; the error suggests `partner add` only when ``adding``."""
    known_app(config, app_id, adding=adding)
    partner = config.partners.get((app_id, network))
    if partner is None:
        raise _missing(
            "Partner", network, [p.network for p in config.partners_of(app_id)], f" for app {app_id!r}",
            f"postbackd partner add {app_id} {network}" if adding else None,
        )
    return partner


def known_postback(config: ConfigState, app_id: str, network: str, event: str) -> PostbackConfig:
    known_partner(config, app_id, network)
    postback = config.postback_for(app_id, network, event)
    if postback is None:
        raise _missing(
            "Postback", event, [p.event for p in config.postbacks_of(app_id, network)],
            f" for partner {network!r} of app {app_id!r}", None,
        )
    return postback


# ---------------------------------------------------------------- network-specific fields


def parse_field_options(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """Parse repeated ``NAME=VALUE`` options, or a mapping of names to values, into a checked dict."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = list(items.items())
    elif isinstance(items, str):
        raise CommandError("Invalid fields: expected a list of NAME=VALUE strings, got one string.")
    else:
        pairs = []
        for item in items:
            name, sep, value = str(item).partition("=")
            if not sep or not name.strip():
                # The text is not repeated: a value typed without its name may be a secret.
                raise CommandError(
                    "Invalid --field option: expected NAME=VALUE, such as app_key=0123abcd, "
                    "but the option has no NAME= part."
                )
            pairs.append((name.strip(), value))
    fields: dict[str, str] = {}
    for name, value in pairs:
        if not isinstance(value, str):
            raise CommandError(f"Invalid value of network-specific field {name!r}: expected a string.")
        if not value:
            raise CommandError(
                f"Invalid network-specific field {name!r}: the value is empty. Give a value, "
                f"or remove an optional field with --remove-field {name}."
            )
        if CONTROL_CHARACTER.search(value):
            raise CommandError(
                f"Invalid value of network-specific field {name!r}: it contains a control character "
                "such as a line break. Enter the value as the network issued it."
            )
        fields[name] = value
    return fields


def integration_of(catalog: Catalog, integration_id: str) -> Integration:
    try:
        return catalog.get(integration_id)
    except IntegrationError as exc:
        raise CommandError(f"{exc} Add a file to DATA_DIR/integrations/, or pick a known id.") from None


def check_partner(catalog: Catalog, partner: PartnerConfig) -> Integration:
    """Check a partner's full state against its integration and return the integration."""
    check_id(partner.network, "network")
    integration = integration_of(catalog, partner.integration)
    try:
        integration.check_fields(partner.fields)
    except IntegrationError as exc:
        raise CommandError(str(exc)) from None
    return integration


def secret_names(catalog: Catalog, partner: PartnerConfig) -> frozenset[str] | None:
    """Return the secret field names of a partner's integration, or None when it is not in the catalog."""
    try:
        return catalog.get(partner.integration).secret_fields()
    except IntegrationError:
        return None


# ---------------------------------------------------------------- country filters


def parse_countries(values: Iterable[str] | str, option: str) -> tuple[str, ...]:
    """Parse country codes given as repeated options and/or comma-separated lists.

    Codes are ISO 3166-1 alpha-2 in any case; the result is upper case,
    sorted and without repeats. The error names every unknown code.
    """
    if isinstance(values, str):
        values = [values]
    codes = set()
    unknown = []
    for value in values:
        if not isinstance(value, str):
            raise CommandError(f"Invalid {option} {value!r}: expected country codes as text, such as 'US,DE'.")
        for part in value.split(","):
            if not part.strip():
                continue
            try:
                codes.add(normalize_country(part))
            except InputError:
                unknown.append(part.strip())
    if unknown:
        # UK is only reserved in ISO 3166-1: the code of the United Kingdom is GB.
        uk = " The United Kingdom is GB." if any(code.upper() == "UK" for code in unknown) else ""
        names = ", ".join(repr(code) for code in unknown)
        raise CommandError(
            f"Unknown country code{'s' if len(unknown) > 1 else ''} {names} in {option}: use ISO 3166-1 alpha-2 "
            f"codes such as US, DE or GB, separated by commas.{uk}"
        )
    if not codes:
        raise CommandError(
            f"Missing country codes for {option}: give one or more ISO 3166-1 alpha-2 codes such as US,DE. "
            "Use --allow-all to remove the country filter."
        )
    return tuple(sorted(codes))


def country_filter_option(args: Mapping[str, Any]) -> CountryFilter | None:
    """Return the country filter set by ``allow_all``, ``block`` or ``allow_only``, or None if none is set."""
    chosen = [name for name in ("allow_all", "block", "allow_only") if args.get(name)]
    if len(chosen) > 1:
        options = " and ".join("--" + name.replace("_", "-") for name in chosen)
        raise CommandError(
            f"Conflicting country options {options}: give only one of --allow-all, --block CC,... "
            "(allow all but a block list) or --allow-only CC,... (an allow list)."
        )
    if not chosen:
        return None
    if chosen[0] == "allow_all":
        return CountryFilter()
    mode = chosen[0]
    return CountryFilter(mode=mode, countries=parse_countries(args[mode], "--" + mode.replace("_", "-")))


def country_filter_entry(block: list[str] | None, allow_only: list[str] | None) -> CountryFilter:
    """Return the country filter of an import file entry with optional ``block`` and ``allow_only`` keys."""
    if block and allow_only:
        raise CommandError(
            "Conflicting keys block and allow_only: a country filter is either a block list or an allow list. "
            "Keep one of them."
        )
    if allow_only:
        return CountryFilter(mode="allow_only", countries=parse_countries(allow_only, "allow_only"))
    if block:
        return CountryFilter(mode="block", countries=parse_countries(block, "block"))
    return CountryFilter()


def describe_countries(country_filter: CountryFilter) -> str:
    if country_filter.mode == "allow_only":
        return "allow only " + ",".join(country_filter.countries)
    if country_filter.countries:
        return "block " + ",".join(country_filter.countries)
    return "allow all"


# ---------------------------------------------------------------- postbacks


def check_event(event: str) -> str:
    return check_text(event, "event name ('install' or a post-install event name)")


def _delay_hint(text: str) -> str:
    """Return a corrected form of a delay text that fails to parse, such as '30s' for '30' or '30 s'."""
    if re.fullmatch(r"\s*[0-9.]+\s*", text):
        return f" Add a unit, e.g. '{text.strip()}s'."
    compact = "".join(text.split()).lower()
    try:
        parse_duration(compact)
    except ValueError:
        return ""
    return f" Did you mean '{compact}'?"


def parse_delay(value: str | float | int) -> float:
    """Parse a delivery delay: a duration text such as ``realtime``, ``30s`` or ``1h30m``, or seconds."""
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError:
            hint = _delay_hint(value)
            raise CommandError(
                f"Invalid delivery delay {value!r}: expected {DURATION_FORMS}, up to 24h.{hint}"
            ) from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise CommandError(f"Invalid delivery delay {value!r}: expected a duration such as '30s' or '5m'.")
    if not 0 <= seconds <= MAX_DELAY:
        raise CommandError(
            f"Invalid delivery delay {value!r}: use realtime (0s) up to {format_duration(MAX_DELAY)}, "
            "for example 30s, 10m or 1h30m."
        )
    return seconds


def check_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError(f"Invalid retry attempts {value!r}: expected a whole number from 0 to {MAX_RETRIES}.")
    if not 0 <= value <= MAX_RETRIES:
        raise CommandError(
            f"Invalid retry attempts {value}: use 0 (do not retry) up to {MAX_RETRIES}."
        )
    return value


def check_method(method: str) -> str:
    if method not in DELIVERY_METHODS:
        raise CommandError(
            f"Invalid delivery method {method!r}: use all, network or network+agency."
            + suggest(method, DELIVERY_METHODS)
        )
    return method


def check_install_countries(postback: PostbackConfig) -> None:
    """Reject a country filter on an install postback: installs use the partner's filter."""
    if postback.event == INSTALL and postback.countries != CountryFilter():
        raise CommandError(
            f"The install postback of partner {postback.network!r} always uses the partner's country filter. "
            f"Set it with `postbackd partner set {postback.app_id} {postback.network} --block CC,...` "
            "or --allow-only CC,...."
        )


def check_partner_event_name(integration: Integration | None, postback: PostbackConfig) -> None:
    """Check the partner event name, and that one is set when the integration needs it.

    Without an ``integration`` (its id is unknown) only the name itself is checked.
    """
    where = f"postback {postback.event!r} of partner {postback.network!r}"
    if postback.partner_event_name is not None:
        check_text(postback.partner_event_name, f"partner event name of {where}")
    elif integration is not None and integration.event_names == "required" and postback.event != INSTALL:
        raise CommandError(
            f"Missing partner event name for {where}: integration {integration.id!r} needs the network's own "
            "name for each event. Add --partner-event-name NAME."
        )


def check_postback(integration: Integration, postback: PostbackConfig) -> None:
    """Check a postback's full state against its partner's integration."""
    check_event(postback.event)
    check_method(postback.method)
    check_retries(postback.retries)
    parse_delay(postback.delay)
    check_install_countries(postback)
    check_partner_event_name(integration, postback)
