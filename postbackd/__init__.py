"""postbackd: a self-hosted postback delivery daemon."""

__version__ = "0.1.0"
