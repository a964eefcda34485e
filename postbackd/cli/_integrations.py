"""``postbackd integrations``: the integrations the running daemon has loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from postbackd.cli._client import ControlClient
from postbackd.cli._config_output import echo_json, format_pairs, indent_lines, yes_no
from postbackd.cli._options import json_option, socket_dir_option
from postbackd.cli._table import format_table


@click.group()
def integrations() -> None:
    """List and show the integrations the daemon has loaded, built-in and from DATA_DIR/integrations/."""


@integrations.command("list")
@json_option
@socket_dir_option
def integrations_list(as_json: bool, socket_dir: Path) -> None:
    """List the integrations with their required network-specific fields."""
    with ControlClient(socket_dir) as client:
        found = client.call("integrations.list")
    if as_json:
        echo_json(found)
        return
    rows = [
        [i["id"], i["name"], i["event_names"], ", ".join(i["required_fields"]) or "(none)", i["source"]]
        for i in found
    ]
    click.echo(format_table(["id", "name", "partner event names", "required fields", "source"], rows))


@integrations.command("show")
@click.argument("integration_id")
@json_option
@socket_dir_option
def integrations_show(integration_id: str, as_json: bool, socket_dir: Path) -> None:
    """Show integration INTEGRATION_ID: its network-specific fields and request templates."""
    with ControlClient(socket_dir) as client:
        shown = client.call("integrations.show", integration=integration_id)
    if as_json:
        echo_json(shown)
        return
    click.echo(format_pairs([
        ("integration", shown["id"]),
        ("name", shown["name"]),
        ("source", shown["source"]),
        ("partner event names", shown["event_names"]),
        ("concurrency", f"{shown['concurrency']} requests at a time"),
    ]))
    click.echo()
    rows = [
        [f["name"], yes_no(f["required"]), yes_no(f["secret"]), f.get("pattern"), f["description"]]
        for f in shown["fields"]
    ]
    click.echo(format_table(["field", "required", "secret", "pattern", "description"], rows))
    if shown["partner_template"]:
        click.echo("\nEach partner gives its own URL template in the url field and its method in the method field.")
        return
    for kind in ("install", "event"):
        click.echo()
        click.echo(format_request(kind, shown[kind]))


def format_request(kind: str, request: dict[str, Any]) -> str:
    lines = [f"{kind} request: {request['method']} {request['url']}"]
    lines.extend(f"  {name}: {value}" for name, value in request.get("headers", {}).items())
    if request.get("body") is not None:
        lines.append("  body:")
        lines.append(indent_lines(request["body"].strip("\n"), "    "))
    return "\n".join(lines)
