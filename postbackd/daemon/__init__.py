"""The daemon: sockets, the decision loop around the log, settings and systemd support."""

from postbackd.daemon._main import DaemonError, run_daemon
from postbackd.daemon._settings import Settings, SettingsError, load_settings, parse_duration
