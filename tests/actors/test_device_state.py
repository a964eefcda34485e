"""Window sets of the device state: contents, order and sharing between devices."""

from __future__ import annotations

import pytest

from postbackd.actors import _device_state
from postbackd.actors._device_state import DeviceState, InstallFacts, Reengagement, with_window

from .builders import DAY, T0


def test_with_window_sets_bits_per_network() -> None:
    windows = with_window(None, "netA", 1)
    windows = with_window(windows, "netB", 3)
    windows = with_window(windows, "netA", 2)

    assert windows.used("netA", 1)
    assert windows.used("netA", 2)
    assert not windows.used("netA", 3)
    assert windows.used("netB", 3)
    assert not windows.used("netB", 1)
    assert not windows.used("netC", 1)
    assert (windows.network, windows.mask) == ("netA", 0b110)
    assert windows.next is not None
    assert (windows.next.network, windows.next.mask) == ("netB", 0b1000)


def test_small_window_sets_are_shared() -> None:
    first = with_window(with_window(None, "netA", 1), "netB", 1)
    second = with_window(with_window(None, "netA", 1), "netB", 1)

    assert first is second


def test_large_window_sets_are_not_shared() -> None:
    first = with_window(None, "netA", 10)
    second = with_window(None, "netA", 10)

    assert first == second
    assert first is not second
    assert first.used("netA", 10)


def test_window_sets_past_cache_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_device_state, "_shared_window_sets", {})
    monkeypatch.setattr(_device_state, "_SHARED_SETS_LIMIT", 1)

    first = with_window(None, "netA", 1)
    second = with_window(None, "netA", 2)
    again = with_window(None, "netA", 2)

    assert first is with_window(None, "netA", 1)
    assert second == again
    assert second is not again
    assert again.used("netA", 2)


def test_mark_window_uses_anchor_at_time() -> None:
    device = DeviceState(install_time=T0, install=InstallFacts(network="netA"))
    device.add_reengagement(Reengagement(T0 + 3 * DAY, "netA"))

    device.mark_window(T0 + 1.5 * DAY, "netA", 1)

    assert device.window_used(T0 + 1.9 * DAY, "netA", 1)
    assert not device.window_used(T0 + 4.5 * DAY, "netA", 1)
    device.mark_window(T0 + 4.5 * DAY, "netA", 1)
    assert device.window_used(T0 + 4.5 * DAY, "netA", 1)


def test_mark_window_without_install_raises() -> None:
    device = DeviceState()
    device.add_reengagement(Reengagement(T0, "netA"))

    with pytest.raises(ValueError, match="The device has no install"):
        device.mark_window(T0 + DAY, "netA", 1)
