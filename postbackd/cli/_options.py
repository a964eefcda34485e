"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

from postbackd.cli._client import default_socket_dir


def socket_dir_option(function):
    """Add ``--socket-dir``: where the daemon's sockets are."""
    return click.option(
        "--socket-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        callback=lambda ctx, param, value: value if value is not None else default_socket_dir(),
        help="Directory of ingest.sock and control.sock. Default: $POSTBACKD_SOCKET_DIR, else the data directory.",
    )(function)


def json_option(function):
    """Add ``--json``: machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")(function)
