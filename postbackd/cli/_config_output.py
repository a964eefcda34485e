"""Options and output helpers shared by the configuration commands."""

from __future__ import annotations

import json
import pwd
from collections.abc import Sequence
from typing import Any

import click


def country_options(function):
    """Add ``--allow-all``, ``--block`` and ``--allow-only``: a country filter."""
    function = click.option(
        "--allow-only", multiple=True, metavar="CC,...",
        help="Allow only these ISO 3166-1 alpha-2 country codes (an allow list), e.g. US,CA. Repeatable.",
    )(function)
    function = click.option(
        "--block", multiple=True, metavar="CC,...",
        help="Allow all countries except these ISO 3166-1 alpha-2 codes (a block list), e.g. RU,BY. Repeatable.",
    )(function)
    return click.option("--allow-all", is_flag=True, help="Remove the country filter.")(function)


def country_args(allow_all: bool | None, block: Sequence[str], allow_only: Sequence[str]) -> dict[str, Any]:
    """Return the control arguments of the country options that were given."""
    return {"allow_all": allow_all or None, "block": list(block) or None, "allow_only": list(allow_only) or None}


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def echo_change(result: dict[str, Any]) -> None:
    """Print the change a command made, or that it made none."""
    if result["changed"]:
        click.echo(result["change"])
    else:
        click.echo(f"{result['change']} (nothing appended)")


def format_pairs(pairs: Sequence[tuple[str, object]], indent: str = "") -> str:
    """Align ``label: value`` lines."""
    width = max((len(label) for label, _ in pairs), default=0)
    return "\n".join(f"{indent}{label + ':':<{width + 1}} {'' if value is None else value}" for label, value in pairs)


def indent_lines(text: str, indent: str) -> str:
    return "\n".join(indent + line for line in text.splitlines())


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def user_name(uid: int | None) -> str:
    """Return ``name (uid)`` for a local uid, or the uid alone when it has no account."""
    if uid is None:
        return "unknown"
    try:
        return f"{pwd.getpwuid(uid).pw_name} ({uid})"
    except KeyError:
        return str(uid)


def fields_text(fields: dict[str, str]) -> str:
    """Return network-specific fields as ``name=value`` pairs; secret values arrive masked."""
    return ", ".join(f"{name}={value}" for name, value in fields.items()) or "(none)"
