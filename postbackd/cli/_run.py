"""``postbackd run``: the daemon in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from postbackd.daemon._settings import SettingsError, load_settings, settings_to_toml


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Directory of the event log and operator integrations. "
                   "Default: $POSTBACKD_DATA_DIR, else $XDG_STATE_HOME/postbackd (~/.local/state/postbackd).")
@click.option("--socket-dir", type=click.Path(file_okay=False), default=None,
              help="Directory for ingest.sock and control.sock. Default: $POSTBACKD_SOCKET_DIR, else the data dir.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Settings file (TOML). Default: /etc/postbackd/postbackd.toml when present. Options here win.")
@click.option("--retry-delays", default=None, metavar="LIST",
              help="Spacing of retry attempts, e.g. 30s,2m,10m,30m,1h,2h,4h,8h,12h,24h (the default); "
                   "each gets plus or minus 20 % jitter, and the last repeats.")
@click.option("--attempt-timeout", default=None, metavar="DURATION",
              help="Total deadline of one delivery attempt. Default: 10s.")
@click.option("--concurrency", default=None, type=int,
              help="Concurrent requests per partner when its integration sets none. Default: 8.")
@click.option("--allow-private-endpoints", is_flag=True, default=None,
              help="Allow postbacks to loopback, private and link-local addresses (for tests and local tries).")
@click.option("--shutdown-grace", default=None, metavar="DURATION",
              help="How long in-flight requests may finish on SIGTERM/SIGINT. Default: 10s.")
@click.option("--control-group", default=None,
              help="Group given control.sock with mode 0660 when the daemon binds it. Default: none, mode 0600.")
@click.option("--ingest-group", default=None,
              help="Group given ingest.sock with mode 0660 when the daemon binds it. Default: none, mode 0600.")
@click.option("--log-level", default=None, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Lowest level logged. Default: INFO.")
@click.option("--print-config", is_flag=True, help="Print the effective settings as TOML and exit.")
def run(config_path: Path | None, print_config: bool, **options: object) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT."""
    try:
        settings = load_settings(options, config_path, config_path_explicit=config_path is not None)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    if print_config:
        click.echo(settings_to_toml(settings), nl=False)
        return
    # The daemon's modules load here, not at CLI start-up, so other commands stay quick.
    import trio

    from postbackd.daemon._logging import setup_logging
    from postbackd.daemon._main import DaemonError, run_daemon
    from postbackd.daemon._systemd import ServiceSetupError
    from postbackd.eventlog import LogError
    from postbackd.integrations import IntegrationError

    setup_logging(settings.log_level)
    try:
        trio.run(run_daemon, settings)
    except (DaemonError, ServiceSetupError, LogError, IntegrationError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
