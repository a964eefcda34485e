"""Memory use of the device state.

Run as a script to measure a million devices by process RSS:

    python tests/actors/test_device_memory.py 1000000

The test measures a smaller population with tracemalloc and checks the bytes
per device against the budget of 300 MB per million devices.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
import uuid

from postbackd.actors import ConfigState, DecisionEngine
from postbackd.eventlog import Attribution, Event, PartnerConfig, PartnerConfigured, PostbackConfig, PostbackConfigured

NETWORKS = ("netA", "netB", "netC", "netD", "netE")
COUNTRIES = ("US", "DE", "FR", "GB", "JP", "BR", "IN", "CA")
START = 1_764_842_400.0
# Offsets from the install, in seconds, and names of each device's events:
# a purchase, then a SessionBegin in windows 1 and 2.
DEVICE_EVENTS = (("Purchase", 3600.0), ("SessionBegin", 90000.0), ("SessionBegin", 180000.0))


def _config(session_partners: int) -> ConfigState:
    records = []
    for index, network in enumerate(NETWORKS):
        records.append(PartnerConfigured(PartnerConfig(app_id="app", network=network, integration="generic")))
        events = ["install", "Purchase"] + (["SessionBegin"] if index < session_partners else [])
        for name in events:
            records.append(PostbackConfigured(PostbackConfig(app_id="app", network=network, event=name, method="all")))
    config = ConfigState()
    for seq, record in enumerate(records, start=1):
        config.apply(seq, record)
    return config


def build_devices(engine: DecisionEngine, count: int, session_partners: int = 1) -> None:
    """Feed ``count`` devices through decide and apply: an install and three events each.

    Device ids are 36-character UUID strings, the length of an IDFA or a Google
    advertising id.
    """
    config = _config(session_partners)
    for index in range(count):
        device = str(uuid.UUID(int=index * 7919 + 13))
        installed = START + (index % 100_000) * 1.5
        item = Event(
            app="app",
            id=f"i{index}",
            type="install",
            device=device,
            time=installed,
            country=COUNTRIES[index % len(COUNTRIES)],
            attribution=Attribution(network=NETWORKS[index % len(NETWORKS)]),
        )
        engine.apply(item, engine.decide(config, item, installed))
        for number, (name, offset) in enumerate(DEVICE_EVENTS):
            item = Event(app="app", id=f"e{index}.{number}", type="event", name=name, device=device, time=installed + offset)
            engine.apply(item, engine.decide(config, item, installed + offset))


def test_device_state_fits_budget() -> None:
    count = 10_000
    engine = DecisionEngine()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        build_devices(engine, count)
        per_device = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()

    assert len(engine.devices) == count
    # Measured 178 bytes per device on CPython 3.11. The limit leaves room for
    # the steps in which a dict grows, and for the interpreter within the
    # budget of 300 MB per million devices.
    assert per_device < 220


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS is missing from /proc/self/status; this measurement needs Linux.")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    session_partners = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    engine = DecisionEngine()
    baseline = _rss_bytes()
    started = time.perf_counter()
    build_devices(engine, count, session_partners)
    elapsed = time.perf_counter() - started
    total = _rss_bytes()
    print(
        f"{count} devices, {session_partners} partner(s) with a SessionBegin postback: "
        f"RSS {total / 1e6:.1f} MB, {(total - baseline) / 1e6:.1f} MB above the {baseline / 1e6:.1f} MB baseline "
        f"({(total - baseline) / count:.0f} bytes per device), {elapsed:.0f} s"
    )
