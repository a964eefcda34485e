"""A restarted daemon rebuilds every setting and the history from the log."""

from __future__ import annotations

import json

from tests.config.conftest import configure_everything


def snapshot(daemon) -> tuple[str, str, str]:
    return (
        daemon.cli("config", "show", "--json").output,
        daemon.cli("config", "export", "--show-secrets").output,
        daemon.cli("config", "history", "--json").output,
    )


def test_restart_keeps_every_setting(daemon):
    daemon.start()
    configure_everything(daemon)
    daemon.cli("partner", "set", "shop", "examplenet", "--remove-field", "sub_id")
    daemon.cli("postback", "remove", "shop", "jsonads", "App Open")
    daemon.cli("partner", "remove", "game", "localnet")
    before = snapshot(daemon)

    daemon.stop()
    daemon.start()

    after = snapshot(daemon)
    assert after[0] == before[0]
    assert after[1] == before[1]
    assert after[2] == before[2]
    assert json.loads(after[0])["apps"][0]["partners"] == []


def test_kill_keeps_every_acknowledged_setting(daemon):
    daemon.start()
    configure_everything(daemon)
    before = snapshot(daemon)

    daemon.kill()
    daemon.start()

    assert snapshot(daemon) == before
