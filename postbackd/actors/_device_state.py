"""Compact per-device state: the install, the reengagements and the used SessionBegin windows.

The decision engine keeps one ``DeviceState`` per device that has an install or
a reengagement, so the size of these objects sets the daemon's memory use. The
stored objects are msgspec structs with ``gc=False``: such a struct costs 16
bytes plus 8 per field and carries no garbage-collector header. That is safe
because they form no reference cycles: they hold strings, floats, ints and
older structs of this module only.

Conversions are the install and the reengagements. At an event time ``t`` the
install counts whatever its time, and a reengagement counts from its own time
on. The latest conversion that counts owns the event and is the anchor of the
SessionBegin windows, and each conversion keeps the windows used since it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

import msgspec

# Window sets whose masks are all below this value are shared between
# devices. It covers windows 1 to 9, a device's first ten days.
_SHARED_MASK_LIMIT = 1 << 10

# Maximum number of shared window sets. A full cache takes 6.8 MB, measured
# with tracemalloc on CPython 3.11. Past the limit, each new set belongs to one
# device, which costs memory but gives the same decisions.
_SHARED_SETS_LIMIT = 1 << 16


class Owner(NamedTuple):
    """The attribution an event is credited to, in the terms of a ``Decision``."""

    type: str
    network: str | None = None
    agency: str | None = None


UNATTRIBUTED = Owner("unattributed")


class WindowSet(msgspec.Struct, frozen=True, gc=False):
    """SessionBegin windows used since one anchor: bit k of ``mask`` is window k of ``network``.

    The sets of several networks chain through ``next``. Sets are immutable, so
    devices whose sets are equal and small share one object.
    """

    network: str
    mask: int
    next: WindowSet | None = None

    def used(self, network: str, window: int) -> bool:
        entry: WindowSet | None = self
        while entry is not None:
            if entry.network == network:
                return bool(entry.mask >> window & 1)
            entry = entry.next
        return False


_shared_window_sets: dict[WindowSet, WindowSet] = {}


def _window_set(network: str, mask: int, next: WindowSet | None) -> WindowSet:
    """Return a window set equal to ``WindowSet(network, mask, next)``, shared when it is small.

    Chains are built from the tail, so a shareable ``next`` is already the
    shared object.
    """
    window_set = WindowSet(network, mask, next)
    if mask >= _SHARED_MASK_LIMIT or (next is not None and _shared_window_sets.get(next) is not next):
        return window_set
    shared = _shared_window_sets.get(window_set)
    if shared is not None:
        return shared
    if len(_shared_window_sets) < _SHARED_SETS_LIMIT:
        _shared_window_sets[window_set] = window_set
    return window_set


def with_window(windows: WindowSet | None, network: str, window: int) -> WindowSet:
    """Return ``windows`` with ``window`` of ``network`` added; networks keep their first-use order."""
    masks: list[tuple[str, int]] = []
    entry = windows
    while entry is not None:
        masks.append((entry.network, entry.mask))
        entry = entry.next
    for index, (known, mask) in enumerate(masks):
        if known == network:
            masks[index] = (network, mask | 1 << window)
            break
    else:
        masks.append((network, 1 << window))

    result: WindowSet | None = None
    for known, mask in reversed(masks):
        result = _window_set(known, mask, result)
    assert result is not None
    return result


class InstallFacts(msgspec.Struct, frozen=True, gc=False):
    """Attribution and country of an install.

    Devices with equal values share one object, which saves 16 bytes per
    device over three fields of their own.
    """

    network: str | None = None
    agency: str | None = None
    country: str | None = None

    def owner(self) -> Owner:
        if self.network is None:
            return UNATTRIBUTED
        return Owner("install", self.network, self.agency)


class Reengagement(msgspec.Struct, frozen=True, gc=False):
    """A reengagement of the device attributed to ``network``, and the windows used since it."""

    time: float
    network: str
    agency: str | None = None
    windows: WindowSet | None = None

    def owner(self) -> Owner:
        return Owner("reengagement", self.network, self.agency)


class DeviceState(msgspec.Struct, gc=False):
    """The facts about one device that the rules read.

    ``install_time`` and ``install`` are both set or both None. Reengagements
    are sorted by time, and reengagements with equal times keep arrival order.
    Every field is an immutable value that updates replace, never change in
    place, so a shallow copy keeps the state as it was.
    """

    install_time: float | None = None
    install: InstallFacts | None = None
    install_windows: WindowSet | None = None
    reengagements: tuple[Reengagement, ...] | None = None

    def _conversions_at(self, time: float) -> list[tuple[float, int]]:
        """List the conversions that count at ``time`` as (time, position), latest last.

        Position 0 is the install and position i is reengagement i - 1. A
        reengagement at the same time as the install comes after it.
        """
        found: list[tuple[float, int]] = []
        if self.install_time is not None:
            found.append((self.install_time, 0))
        for position, reengagement in enumerate(self.reengagements or (), start=1):
            if reengagement.time > time:
                break
            found.append((reengagement.time, position))
        found.sort(key=lambda conversion: conversion[0])
        return found

    def _owner(self, position: int) -> Owner:
        if position == 0:
            assert self.install is not None
            return self.install.owner()
        assert self.reengagements is not None
        return self.reengagements[position - 1].owner()

    def owner_at(self, time: float) -> Owner:
        """Return the attribution of the latest conversion that counts at ``time``."""
        if self.reengagements is None:
            # Most devices have only their install, which counts at any time.
            return UNATTRIBUTED if self.install is None else self.install.owner()
        conversions = self._conversions_at(time)
        return self._owner(conversions[-1][1]) if conversions else UNATTRIBUTED

    def latest_owner_matching(self, time: float, accept: Callable[[Owner], bool]) -> Owner | None:
        """Return the latest conversion counting at ``time`` that ``accept`` takes, or None."""
        if self.reengagements is None:
            if self.install is None:
                return None
            owner = self.install.owner()
            return owner if accept(owner) else None
        for _, position in reversed(self._conversions_at(time)):
            owner = self._owner(position)
            if accept(owner):
                return owner
        return None

    def _anchor_position(self, time: float) -> int | None:
        if self.install_time is None:
            return None
        if self.reengagements is None:
            return 0
        return self._conversions_at(time)[-1][1]

    def anchor_at(self, time: float) -> float | None:
        """Return the anchor of the SessionBegin windows at ``time``, None without an install.

        The anchor is the time of the latest conversion that counts at ``time``.
        """
        if self.install_time is None:
            return None
        if self.reengagements is None:
            return self.install_time
        return self._conversions_at(time)[-1][0]

    def window_used(self, time: float, network: str, window: int) -> bool:
        """Return whether ``network`` got the postback of ``window`` of the anchor at ``time``."""
        position = self._anchor_position(time)
        if position is None:
            return False
        windows = self.install_windows if position == 0 else self.reengagements[position - 1].windows
        return windows is not None and windows.used(network, window)

    def mark_window(self, time: float, network: str, window: int) -> None:
        """Record that ``network`` got the postback of ``window`` of the anchor at ``time``.

        Raises ValueError when the device has no install, so no anchor.
        """
        position = self._anchor_position(time)
        if position is None:
            raise ValueError("The device has no install, so it has no SessionBegin windows to mark.")
        if position == 0:
            self.install_windows = with_window(self.install_windows, network, window)
            return
        reengagements = list(self.reengagements)
        anchor = reengagements[position - 1]
        reengagements[position - 1] = msgspec.structs.replace(
            anchor, windows=with_window(anchor.windows, network, window)
        )
        self.reengagements = tuple(reengagements)

    def add_reengagement(self, reengagement: Reengagement) -> None:
        """Insert a reengagement in time order; one that arrives late goes to its place."""
        existing = self.reengagements or ()
        position = len(existing)
        while position > 0 and existing[position - 1].time > reengagement.time:
            position -= 1
        self.reengagements = existing[:position] + (reengagement,) + existing[position:]


class DeviceTable(Mapping[tuple[str, str], DeviceState]):
    """Device states keyed by (app id, device id).

    ``apps`` stores one dict per app, keyed by device id, because a tuple key
    per device would cost 56 bytes more per device. ``len`` counts devices.
    """

    def __init__(self) -> None:
        self.apps: dict[str, dict[str, DeviceState]] = {}
        self._count = 0

    @classmethod
    def adopt(cls, apps: dict[str, dict[str, DeviceState]]) -> DeviceTable:
        """Return a table that takes over ``apps`` without copying it (a restored snapshot's dicts)."""
        table = cls()
        table.apps = apps
        table._count = sum(len(devices) for devices in apps.values())
        return table

    def __getitem__(self, key: tuple[str, str]) -> DeviceState:
        app, device_id = key
        return self.apps[app][device_id]

    def get(self, key: tuple[str, str], default: DeviceState | None = None) -> DeviceState | None:
        # Mapping.get raises and catches KeyError for every new device, which
        # showed in the ingest profile; two dict lookups do not.
        app, device_id = key
        devices = self.apps.get(app)
        if devices is None:
            return default
        return devices.get(device_id, default)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for app, devices in self.apps.items():
            for device_id in devices:
                yield app, device_id

    def __len__(self) -> int:
        return self._count

    def setdefault(self, app: str, device_id: str) -> DeviceState:
        """Return the state of a device, adding an empty one if the device is new."""
        devices = self.apps.setdefault(app, {})
        state = devices.get(device_id)
        if state is None:
            state = devices[device_id] = DeviceState()
            self._count += 1
        return state
