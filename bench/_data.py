"""Input lines in the native format: installs and in-app events of many devices.

Every fourth line is an install of a new device; the other lines are events
of devices installed before them. Installs are attributed to one of the
benchmark partners' networks or to none (organic), so with the delivery
method ``network`` most decisions are suppressed and some are scheduled, as
in a real feed.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from bench._daemon import APP_ID, NETWORKS

# Share of lines that are installs of a new device.
INSTALL_SHARE = 0.25

# Event names and their weights; Purchase and SessionBegin have postbacks.
EVENT_NAMES = ("Purchase", "SessionBegin", "level_complete", "tutorial_done")
EVENT_WEIGHTS = (0.2, 0.3, 0.35, 0.15)

# Devices are installed over this many seconds before now, and events follow within 3 days.
INSTALL_SPAN = 20 * 86400.0
EVENT_SPAN = 3 * 86400.0


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def install_line(number: int, device: int, when: float, network: str | None) -> bytes:
    attribution = (
        f',"attribution":{{"network":"{network}","campaign_id":"cmp-{device % 97}","click_id":"clk-{number}"}}'
        if network else ""
    )
    return (
        f'{{"type":"install","id":"i-{number:09d}","app":"{APP_ID}","device":"dev-{device:09d}",'
        f'"time":"{_rfc3339(when)}","country":"US","device_ids":{{"adid":"ad-{device:012d}"}},'
        f'"ip":"203.0.113.{device % 250}"{attribution}}}\n'
    ).encode()


def event_line(number: int, device: int, when: float, name: str) -> bytes:
    data = ',"data":{"revenue":1.99,"currency":"USD"}' if name == "Purchase" else ""
    return (
        f'{{"type":"event","id":"e-{number:09d}","app":"{APP_ID}","device":"dev-{device:09d}",'
        f'"time":"{_rfc3339(when)}","name":"{name}"{data}}}\n'
    ).encode()


def write_ingest_lines(path: Path, count: int, seed: int = 1) -> None:
    """Write ``count`` native lines, mixed installs and events, to ``path``."""
    rng = random.Random(seed)
    now = time.time()
    first_install = now - INSTALL_SPAN - EVENT_SPAN
    networks = (*NETWORKS, None)
    install_times: list[float] = []
    with path.open("wb") as out:
        for number in range(count):
            if not install_times or rng.random() < INSTALL_SHARE:
                device = len(install_times)
                when = first_install + INSTALL_SPAN * number / count
                install_times.append(when)
                out.write(install_line(number, device, when, rng.choice(networks)))
            else:
                device = rng.randrange(len(install_times))
                when = install_times[device] + rng.random() * EVENT_SPAN
                name = rng.choices(EVENT_NAMES, EVENT_WEIGHTS)[0]
                out.write(event_line(number, device, when, name))


def write_install_lines(path: Path, count: int, first_number: int = 0) -> None:
    """Write ``count`` installs of new devices, each attributed to a benchmark network."""
    now = time.time()
    with path.open("wb") as out:
        for offset in range(count):
            number = first_number + offset
            out.write(install_line(number, number, now - 60.0, NETWORKS[number % len(NETWORKS)]))
