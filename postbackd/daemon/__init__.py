"""The daemon: sockets, the decision loop around the log, settings and systemd support.

The names below load on first use, so that CLI commands which only need the
settings module do not import the whole daemon.
"""

import importlib

_EXPORTS = {
    "DaemonError": "postbackd.daemon._main",
    "run_daemon": "postbackd.daemon._main",
    "Settings": "postbackd.daemon._settings",
    "SettingsError": "postbackd.daemon._settings",
    "load_settings": "postbackd.daemon._settings",
    "parse_duration": "postbackd.daemon._settings",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'postbackd.daemon' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
