"""Fixtures for the configuration tests: a second daemon and a configuration that sets every setting."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import Daemon

# API key of the jsonads partner: matches the integration's pattern and
# appears nowhere else, so finding it in an output means it leaked.
SECRET = "SecretKey0123456789abcdefXYZ"
# A second valid API key, for changes of the secret.
OTHER_SECRET = "OtherKey0123456789abcdefQRS"
# App key of the examplenet partner: 32 lower-case hex digits.
APP_KEY = "0123456789abcdef0123456789abcdef"


def last_seq(daemon: Daemon) -> int:
    return daemon.control("status")["result"]["last_seq"]


def configure_everything(daemon: Daemon, receiver_url: str = "http://127.0.0.1:9/pb") -> None:
    """Configure two apps whose partners and postbacks between them use every setting."""
    daemon.cli("app", "add", "shop", "--platform", "ios", "--bundle-id", "com.example.Shop", "--name", "Shop")
    daemon.cli("app", "add", "game", "--platform", "android", "--bundle-id", "com.example.game", "--name", "Game")

    daemon.cli("partner", "add", "shop", "jsonads", "--field", "advertiser_id=42", "--field", f"api_key={SECRET}",
               "--ignore-data-controlled", "--block", "ru,by")
    daemon.cli("postback", "add", "shop", "jsonads", "install", "--delay", "realtime", "--retries", "0")
    daemon.cli("postback", "add", "shop", "jsonads", "Purchase", "--partner-event-name", "buy", "--delay", "5m",
               "--retries", "10", "--method", "network+agency", "--allow-only", "US,ca")
    daemon.cli("postback", "add", "shop", "jsonads", "App Open", "--partner-event-name", "open",
               "--method", "all", "--block", "FR")

    daemon.cli("partner", "add", "shop", "examplenet", "--field", f"app_key={APP_KEY}", "--field", "sub_id=s-1",
               "--inactive", "--allow-only", "de", "--allow-only", "AT", "--apply-countries-to-all-events")
    daemon.cli("postback", "add", "shop", "examplenet", "install", "--delay", "1h30m")
    daemon.cli("postback", "add", "shop", "examplenet", "Level Up", "--delay", "24h", "--retries", "1")

    daemon.cli("partner", "add", "game", "localnet", "--integration", "custom",
               "--field", f"url={receiver_url}?event={{event_name}}&id={{event_id}}", "--field", "method=POST")
    daemon.cli("postback", "add", "game", "localnet", "install", "--method", "all")


@pytest.fixture
def second_daemon(tmp_path):
    """Another daemon on its own data directory, for moving a configuration between daemons."""
    socket_dir = Path(tempfile.mkdtemp(prefix="pbd-", dir="/tmp"))
    instance = Daemon(tmp_path / "second" / "data", socket_dir)
    yield instance
    if instance.process is not None and instance.process.poll() is None:
        instance.stop()
    shutil.rmtree(socket_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def configured(tmp_path_factory):
    """One daemon per test module, configured by ``configure_everything``; for tests that change nothing."""
    socket_dir = Path(tempfile.mkdtemp(prefix="pbd-", dir="/tmp"))
    instance = Daemon(tmp_path_factory.mktemp("configured") / "data", socket_dir)
    instance.start()
    configure_everything(instance)
    yield instance
    instance.stop()
    shutil.rmtree(socket_dir, ignore_errors=True)
