"""``postbackd app``: register, change and show apps."""

from __future__ import annotations

from pathlib import Path

import click

from postbackd.cli._client import ControlClient
from postbackd.cli._config_output import echo_change, echo_json, format_pairs, yes_no
from postbackd.cli._options import json_option, socket_dir_option
from postbackd.cli._table import format_table

PLATFORMS = click.Choice(["android", "ios"])


@click.group()
def app() -> None:
    """Register, change and show apps."""


@app.command("add")
@click.argument("app_id")
@click.option("--platform", type=PLATFORMS, required=True, help="The app's platform.")
@click.option("--bundle-id", required=True, help="Android package name or iOS bundle id, e.g. com.example.app.")
@click.option("--name", required=True, help="The app's display name, available as {app_name}.")
@socket_dir_option
def app_add(app_id: str, platform: str, bundle_id: str, name: str, socket_dir: Path) -> None:
    """Register app APP_ID."""
    with ControlClient(socket_dir) as client:
        result = client.call("app.add", app_id=app_id, platform=platform, bundle_id=bundle_id, name=name)
    echo_change(result)


@app.command("set")
@click.argument("app_id")
@click.option("--platform", type=PLATFORMS, help="The app's platform; the bundle id is checked against it.")
@click.option("--bundle-id", help="Android package name or iOS bundle id, e.g. com.example.app.")
@click.option("--name", help="The app's display name, available as {app_name}.")
@socket_dir_option
def app_set(app_id: str, platform: str | None, bundle_id: str | None, name: str | None, socket_dir: Path) -> None:
    """Change the platform, bundle id or name of app APP_ID."""
    with ControlClient(socket_dir) as client:
        result = client.call("app.set", app_id=app_id, platform=platform, bundle_id=bundle_id, name=name)
    echo_change(result)


@app.command("list")
@json_option
@socket_dir_option
def app_list(as_json: bool, socket_dir: Path) -> None:
    """List the registered apps."""
    with ControlClient(socket_dir) as client:
        apps = client.call("app.list")
    if as_json:
        echo_json(apps)
        return
    rows = [[a["app_id"], a["platform"], a["bundle_id"], a["name"], ", ".join(a["partners"])] for a in apps]
    click.echo(format_table(["app", "platform", "bundle id", "name", "partners"], rows))


@app.command("show")
@click.argument("app_id")
@json_option
@socket_dir_option
def app_show(app_id: str, as_json: bool, socket_dir: Path) -> None:
    """Show app APP_ID and its partners."""
    with ControlClient(socket_dir) as client:
        shown = client.call("app.show", app_id=app_id)
    if as_json:
        echo_json(shown)
        return
    click.echo(format_pairs([
        ("app", shown["app_id"]),
        ("platform", shown["platform"]),
        ("bundle id", shown["bundle_id"]),
        ("name", shown["name"]),
    ]))
    click.echo()
    rows = [
        [p["network"], p["integration"], yes_no(p["active"]), p["countries"]["text"],
         ", ".join(pb["event"] for pb in p["postbacks"])]
        for p in shown["partners"]
    ]
    click.echo(format_table(["partner", "integration", "active", "countries", "postbacks"], rows))
