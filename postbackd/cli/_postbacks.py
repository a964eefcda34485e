"""``postbackd postback``: add, change, remove and list a partner's postbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from postbackd.cli._client import ControlClient
from postbackd.cli._config_output import country_args, country_options, echo_change, echo_json
from postbackd.cli._options import json_option, socket_dir_option
from postbackd.cli._partners import format_postbacks


def postback_settings(function):
    """Add the options that ``postback add`` and ``postback set`` share."""
    options = [
        click.option("--delay", metavar="DURATION",
                     help="Delivery delay: 'realtime' (0s) up to 24h, e.g. 30s, 10m, 1h30m. New postbacks: realtime."),
        click.option("--retries", type=int, metavar="N",
                     help="Retry attempts after a failed first attempt: 0 (do not retry) to 10. New postbacks: 3."),
        click.option("--method", type=click.Choice(["all", "network", "network+agency"]),
                     help="Delivery method: every install or event (all), only what NETWORK won the attribution "
                          "for (network), or also what its agencies won (network+agency). New postbacks: network."),
        country_options,
        click.option("--partner-event-name", metavar="NAME",
                     help="The network's own name for this event, as {partner_event_name}. Integrations that need "
                          "one reject event postbacks without it. An empty NAME removes it."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def settings_args(
    delay: str | None,
    retries: int | None,
    method: str | None,
    allow_all: bool,
    block: tuple[str, ...],
    allow_only: tuple[str, ...],
    partner_event_name: str | None,
) -> dict[str, Any]:
    return {
        "delay": delay,
        "retries": retries,
        "method": method,
        "partner_event_name": partner_event_name,
        **country_args(allow_all, block, allow_only),
    }


@click.group()
def postback() -> None:
    """Add, change, remove and list a partner's postbacks.

    EVENT is 'install' for the install postback, or the name of a
    post-install event. The install postback always uses the partner's
    country filter; an event postback uses its own unless the partner is set
    with --apply-countries-to-all-events.
    """


@postback.command("add")
@click.argument("app_id")
@click.argument("network")
@click.argument("event")
@postback_settings
@socket_dir_option
def postback_add(app_id: str, network: str, event: str, socket_dir: Path, **settings: Any) -> None:
    """Send EVENT ('install' or an event name) of APP_ID to partner NETWORK."""
    with ControlClient(socket_dir) as client:
        result = client.call("postback.add", app_id=app_id, network=network, event=event, **settings_args(**settings))
    echo_change(result)


@postback.command("set")
@click.argument("app_id")
@click.argument("network")
@click.argument("event")
@postback_settings
@socket_dir_option
def postback_set(app_id: str, network: str, event: str, socket_dir: Path, **settings: Any) -> None:
    """Change the settings of postback EVENT of partner NETWORK; only the options given change."""
    with ControlClient(socket_dir) as client:
        result = client.call("postback.set", app_id=app_id, network=network, event=event, **settings_args(**settings))
    echo_change(result)


@postback.command("remove")
@click.argument("app_id")
@click.argument("network")
@click.argument("event")
@socket_dir_option
def postback_remove(app_id: str, network: str, event: str, socket_dir: Path) -> None:
    """Stop sending EVENT of APP_ID to partner NETWORK."""
    with ControlClient(socket_dir) as client:
        result = client.call("postback.remove", app_id=app_id, network=network, event=event)
    echo_change(result)


@postback.command("list")
@click.argument("app_id")
@click.argument("network")
@json_option
@socket_dir_option
def postback_list(app_id: str, network: str, as_json: bool, socket_dir: Path) -> None:
    """List the postbacks of partner NETWORK of app APP_ID."""
    with ControlClient(socket_dir) as client:
        partner = client.call("partner.show", app_id=app_id, network=network)
    if as_json:
        echo_json(partner["postbacks"])
        return
    click.echo(format_postbacks(partner["postbacks"], partner["apply_countries_to_all_events"]))
