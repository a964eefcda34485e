"""``postbackd app``, ``partner`` and ``postback``: configuration commands."""

from __future__ import annotations

from pathlib import Path

import click

from postbackd.cli._client import ControlClient
from postbackd.cli._options import socket_dir_option


@click.group()
def app() -> None:
    """Register and change apps."""


@app.command("add")
@click.argument("app_id")
@click.option("--platform", type=click.Choice(["android", "ios"]), required=True, help="The app's platform.")
@click.option("--bundle-id", required=True, help="Android package name or iOS bundle id, e.g. com.example.app.")
@click.option("--name", required=True, help="The app's display name, available as {app_name}.")
@socket_dir_option
def app_add(app_id: str, platform: str, bundle_id: str, name: str, socket_dir: Path) -> None:
    """Register app APP_ID."""
    with ControlClient(socket_dir) as client:
        client.call("app.add", app_id=app_id, platform=platform, bundle_id=bundle_id, name=name)
    click.echo(f"added app {app_id}")


@click.group()
def partner() -> None:
    """Add and change an app's ad-network partners."""


@partner.command("add")
@click.argument("app_id")
@click.argument("network")
@click.option("--integration", help="Integration id; defaults to NETWORK. Use 'custom' for your own URL template.")
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE",
              help="A network-specific field, e.g. url=https://example.com/pb?id={event_id}. Repeatable.")
@socket_dir_option
def partner_add(app_id: str, network: str, integration: str | None, fields: tuple[str, ...], socket_dir: Path) -> None:
    """Add partner NETWORK to app APP_ID."""
    with ControlClient(socket_dir) as client:
        client.call("partner.add", app_id=app_id, network=network, integration=integration, fields=list(fields))
    click.echo(f"added partner {network} to app {app_id}")


@click.group()
def postback() -> None:
    """Add and change a partner's postbacks."""


@postback.command("add")
@click.argument("app_id")
@click.argument("network")
@click.argument("event")
@click.option("--method", type=click.Choice(["all", "network", "network+agency"]), default=None,
              help="Delivery method: every event (all), only what NETWORK won (network), or also its agencies' "
                   "(network+agency). Default: network.")
@socket_dir_option
def postback_add(app_id: str, network: str, event: str, method: str | None, socket_dir: Path) -> None:
    """Send EVENT ('install' or an event name) of APP_ID to partner NETWORK."""
    with ControlClient(socket_dir) as client:
        client.call("postback.add", app_id=app_id, network=network, event=event, method=method)
    click.echo(f"added postback {event} for partner {network} of app {app_id}")
