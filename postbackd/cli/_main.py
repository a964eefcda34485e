"""The ``postbackd`` command group."""

from __future__ import annotations

import click

from postbackd import __version__
from postbackd.cli._apps import app
from postbackd.cli._audit import audit_command
from postbackd.cli._config import config
from postbackd.cli._deliveries import deliveries, resend
from postbackd.cli._integrations import integrations
from postbackd.cli._partners import partner
from postbackd.cli._postbacks import postback
from postbackd.cli._receiver import receiver
from postbackd.cli._replay import replay
from postbackd.cli._run import run
from postbackd.cli._send import send
from postbackd.cli._status import status


@click.group()
@click.version_option(__version__, prog_name="postbackd")
def main() -> None:
    """postbackd: deliver app installs and events to ad-network partners as postbacks."""


main.add_command(run)
main.add_command(send)
main.add_command(app)
main.add_command(partner)
main.add_command(postback)
main.add_command(integrations)
main.add_command(config)
main.add_command(status)
main.add_command(audit_command)
main.add_command(replay)
main.add_command(deliveries)
main.add_command(resend)
main.add_command(receiver)
