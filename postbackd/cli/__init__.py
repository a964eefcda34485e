"""The postbackd command line; it reaches the daemon only through its sockets."""

from postbackd.cli._main import main
