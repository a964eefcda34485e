"""``postbackd config``: the whole configuration, its history, export and import."""

from __future__ import annotations

import json
from pathlib import Path

import click

from postbackd.cli._client import ControlClient
from postbackd.cli._config_output import echo_json, user_name
from postbackd.cli._options import json_option, socket_dir_option
from postbackd.cli._partners import format_partner
from postbackd.cli._table import format_table


@click.group()
def config() -> None:
    """Show, audit, export and import the configuration of apps, partners and postbacks."""


@config.command("show")
@json_option
@socket_dir_option
def config_show(as_json: bool, socket_dir: Path) -> None:
    """Show every app, partner and postback as rebuilt from the event log; secret fields show as ***."""
    with ControlClient(socket_dir) as client:
        shown = client.call("config.show")
    if as_json:
        echo_json(shown)
        return
    click.echo(f"configuration as of log position {shown['seq']}")
    if not shown["apps"]:
        click.echo("no apps yet: add one with `postbackd app add`")
    for app in shown["apps"]:
        click.echo()
        click.echo(f"app {app['app_id']}: {app['platform']}, {app['bundle_id']}, {json.dumps(app['name'], ensure_ascii=False)}")
        for partner in app["partners"]:
            click.echo()
            click.echo(format_partner(partner, indent="  "))


@config.command("history")
@click.option("--app", "app_id", metavar="APP_ID", help="Only the changes of this app.")
@click.option("--limit", type=click.IntRange(min=0), metavar="N", help="Only the last N changes; 0 lists all.")
@json_option
@socket_dir_option
def config_history(app_id: str | None, limit: int | None, as_json: bool, socket_dir: Path) -> None:
    """List every configuration change: when (RFC 3339, UTC), who (uid and pid of the sender) and what changed."""
    with ControlClient(socket_dir) as client:
        entries = client.call("config.history", app_id=app_id, limit=limit)
    if as_json:
        echo_json(entries)
        return
    rows = [[e["seq"], e["received"], user_name(e["uid"]), e["pid"], e["change"]] for e in entries]
    click.echo(format_table(["seq", "time", "user", "pid", "change"], rows))


@config.command("export")
@click.option("--show-secrets", is_flag=True,
              help="Write secret network-specific fields in clear text instead of ***. Keep such a file private.")
@socket_dir_option
def config_export(show_secrets: bool, socket_dir: Path) -> None:
    """Write the whole configuration as TOML to standard output, e.g. `postbackd config export > config.toml`."""
    with ControlClient(socket_dir) as client:
        exported = client.call("config.export", show_secrets=show_secrets or None)
    click.echo(exported["toml"], nl=False)


@config.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the changes without making them.")
@socket_dir_option
def config_import(file: Path, dry_run: bool, socket_dir: Path) -> None:
    """Change the configuration to match FILE, a TOML file as written by `config export`.

    The changes are printed, then appended to the event log in one
    transaction. Apps, partners and postbacks that FILE leaves out are
    removed, except apps, which cannot be removed. A secret field written as
    *** keeps its current value.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"Cannot read {file}: {exc}. Give a UTF-8 TOML file.") from None
    with ControlClient(socket_dir) as client:
        result = client.call("config.import", toml=text, source=str(file), dry_run=dry_run or None)
    changes = result["changes"]
    for change in changes:
        click.echo(change)
    if not changes:
        click.echo(f"no changes: the configuration matches {file}")
    elif dry_run:
        click.echo(f"dry run: {len(changes)} change(s) listed, nothing appended")
    else:
        click.echo(f"imported {len(changes)} change(s) from {file}")
