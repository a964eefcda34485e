"""``postbackd partner``: add, change, remove and show an app's ad-network partners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from postbackd.cli._client import ControlClient
from postbackd.cli._config_output import (
    country_args,
    country_options,
    echo_change,
    echo_json,
    fields_text,
    format_pairs,
    yes_no,
)
from postbackd.cli._options import json_option, socket_dir_option
from postbackd.cli._table import format_table


def partner_settings(function):
    """Add the options that ``partner add`` and ``partner set`` share."""
    options = [
        click.option("--integration", help="Integration id; for `add` it defaults to NETWORK. "
                     "Use 'custom' for your own URL template. See `postbackd integrations list`."),
        click.option("--field", "fields", multiple=True, metavar="NAME=VALUE",
                     help="Set a network-specific field, e.g. url=https://example.com/pb?id={event_id}. Repeatable."),
        click.option("--active/--inactive", default=None,
                     help="Whether the partner receives postbacks. New partners are active."),
        click.option("--respect-data-controlled/--ignore-data-controlled", "respect_data_controlled", default=None,
                     help="Whether events with the data-controlled flag are withheld from this partner. "
                          "New partners respect the flag."),
        country_options,
        click.option("--apply-countries-to-all-events/--no-apply-countries-to-all-events", default=None,
                     help="Whether the partner's country filter also applies to its event postbacks; "
                          "otherwise each event postback uses its own. New partners: no."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def settings_args(
    integration: str | None,
    fields: tuple[str, ...],
    active: bool | None,
    respect_data_controlled: bool | None,
    allow_all: bool,
    block: tuple[str, ...],
    allow_only: tuple[str, ...],
    apply_countries_to_all_events: bool | None,
) -> dict[str, Any]:
    return {
        "integration": integration,
        "fields": list(fields) or None,
        "active": active,
        "respect_data_controlled": respect_data_controlled,
        "apply_countries_to_all_events": apply_countries_to_all_events,
        **country_args(allow_all, block, allow_only),
    }


@click.group()
def partner() -> None:
    """Add, change, remove and show an app's ad-network partners."""


@partner.command("add")
@click.argument("app_id")
@click.argument("network")
@partner_settings
@socket_dir_option
def partner_add(app_id: str, network: str, socket_dir: Path, **settings: Any) -> None:
    """Add partner NETWORK to app APP_ID.

    The integration's required network-specific fields must be given with
    --field; `postbackd integrations show ID` lists them.
    """
    with ControlClient(socket_dir) as client:
        result = client.call("partner.add", app_id=app_id, network=network, **settings_args(**settings))
    echo_change(result)


@partner.command("set")
@click.argument("app_id")
@click.argument("network")
@partner_settings
@click.option("--remove-field", "remove_fields", multiple=True, metavar="NAME",
              help="Remove an optional network-specific field. Repeatable.")
@socket_dir_option
def partner_set(app_id: str, network: str, remove_fields: tuple[str, ...], socket_dir: Path, **settings: Any) -> None:
    """Change the settings of partner NETWORK of app APP_ID.

    Only the options given change; --field changes single fields and keeps
    the others.
    """
    with ControlClient(socket_dir) as client:
        result = client.call(
            "partner.set", app_id=app_id, network=network, remove_fields=list(remove_fields) or None,
            **settings_args(**settings),
        )
    echo_change(result)


@partner.command("remove")
@click.argument("app_id")
@click.argument("network")
@socket_dir_option
def partner_remove(app_id: str, network: str, socket_dir: Path) -> None:
    """Remove partner NETWORK and all its postbacks from app APP_ID."""
    with ControlClient(socket_dir) as client:
        result = client.call("partner.remove", app_id=app_id, network=network)
    echo_change(result)
    if result["pending"]:
        click.echo(
            f"{result['pending']} postback(s) to {network} were already scheduled. They fail with render_error "
            f"when due, unless partner {network} is added back to {app_id} before then."
        )


@partner.command("list")
@click.argument("app_id", required=False)
@json_option
@socket_dir_option
def partner_list(app_id: str | None, as_json: bool, socket_dir: Path) -> None:
    """List the partners of app APP_ID, or of every app."""
    with ControlClient(socket_dir) as client:
        partners = client.call("partner.list", app_id=app_id)
    if as_json:
        echo_json(partners)
        return
    rows = [
        [p["app_id"], p["network"], p["integration"], yes_no(p["active"]),
         "respected" if p["respect_data_controlled"] else "ignored", p["countries"]["text"],
         yes_no(p["apply_countries_to_all_events"]), ", ".join(pb["event"] for pb in p["postbacks"])]
        for p in partners
    ]
    headers = ["app", "partner", "integration", "active", "data-controlled", "countries", "all events", "postbacks"]
    click.echo(format_table(headers, rows))


@partner.command("show")
@click.argument("app_id")
@click.argument("network")
@json_option
@socket_dir_option
def partner_show(app_id: str, network: str, as_json: bool, socket_dir: Path) -> None:
    """Show partner NETWORK of app APP_ID with its fields and postbacks; secret fields show as ***."""
    with ControlClient(socket_dir) as client:
        shown = client.call("partner.show", app_id=app_id, network=network)
    if as_json:
        echo_json(shown)
        return
    click.echo(format_partner(shown))


def format_partner(shown: dict[str, Any], indent: str = "") -> str:
    pairs = [
        ("partner", f"{shown['network']} of app {shown['app_id']}"),
        ("integration", shown["integration"]),
        ("active", yes_no(shown["active"])),
        ("data-controlled flag", "respected" if shown["respect_data_controlled"] else "ignored"),
        ("country filter", shown["countries"]["text"]),
        ("country filter for all events", yes_no(shown["apply_countries_to_all_events"])),
        ("fields", fields_text(shown["fields"])),
    ]
    table = format_postbacks(shown["postbacks"], shown["apply_countries_to_all_events"])
    return format_pairs(pairs, indent) + "\n" + "\n".join(indent + line for line in table.splitlines())


def format_postbacks(postbacks: list[dict[str, Any]], partner_filter_for_all: bool) -> str:
    """Format postbacks as a table, with "partner's filter" where a postback uses its partner's country filter."""
    rows = []
    for pb in postbacks:
        uses_partner_filter = pb["event"] == "install" or partner_filter_for_all
        countries = "partner's filter" if uses_partner_filter else pb["countries"]["text"]
        rows.append([pb["event"], pb["delay"], pb["retries"], pb["method"], countries, pb["partner_event_name"]])
    return format_table(["postback", "delay", "retries", "method", "countries", "partner event name"], rows)
