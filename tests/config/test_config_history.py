"""``config history``: when, who and what of every configuration change, and ``config show``."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime

from tests.config.conftest import configure_everything, last_seq


def history(daemon, *options: str) -> list[dict]:
    return json.loads(daemon.cli("config", "history", "--json", *options).output)


def test_history_records_when_and_who(daemon):
    daemon.start()
    started = time.time()
    daemon.cli("app", "add", "shop", "--platform", "ios", "--bundle-id", "com.example.Shop", "--name", "Shop")
    finished = time.time()

    [entry] = history(daemon)

    assert entry["seq"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["received"])
    # The text keeps milliseconds, so the time read back may be up to 1 ms before the recorded one.
    assert started - 0.001 <= datetime.fromisoformat(entry["received"]).timestamp() <= finished
    assert "time" not in entry
    assert entry["uid"] == os.getuid()
    assert entry["pid"] == os.getpid()
    assert entry["command"] == "app.add"
    assert entry["kind"] == "app"
    assert entry["change"] == 'add app shop: platform ios; bundle id com.example.Shop; name "Shop"'
    assert entry["record"] == {
        "kind": "app", "app": {"app_id": "shop", "platform": "ios", "bundle_id": "com.example.Shop", "name": "Shop"}
    }


def test_history_describes_each_change(daemon):
    daemon.start()
    configure_everything(daemon)
    daemon.cli("partner", "set", "shop", "examplenet", "--active", "--allow-all", "--field", "sub_id=s-9")
    daemon.cli("postback", "set", "shop", "examplenet", "Level Up", "--method", "all")
    daemon.cli("postback", "remove", "shop", "examplenet", "Level Up")
    daemon.cli("partner", "remove", "shop", "examplenet")

    entries = history(daemon)[-4:]

    assert [e["change"] for e in entries] == [
        'set partner examplenet of app shop: active no -> yes; country filter allow only AT,DE -> allow all; '
        'field sub_id "s-1" -> "s-9"',
        "set postback Level Up of partner examplenet of app shop: method network -> all",
        "remove postback Level Up of partner examplenet of app shop",
        "remove partner examplenet of app shop and its postbacks install",
    ]
    assert [e["command"] for e in entries] == ["partner.set", "postback.set", "postback.remove", "partner.remove"]
    assert [e["kind"] for e in entries] == ["partner", "postback", "postback_removed", "partner_removed"]


def test_history_table(daemon):
    daemon.start()
    configure_everything(daemon)

    lines = daemon.cli("config", "history").output.splitlines()

    assert lines[0].split() == ["seq", "time", "user", "pid", "change"]
    assert len(lines) == 1 + last_seq(daemon)
    assert f"({os.getuid()})  {os.getpid()}  add app shop: platform ios;" in lines[1]


def test_history_app_filter_and_limit(daemon):
    daemon.start()
    configure_everything(daemon)

    game = history(daemon, "--app", "game")
    last_two = history(daemon, "--limit", "2")
    everything = history(daemon, "--limit", "0")

    assert [e["seq"] for e in game] == [2, 10, 11]
    assert [e["seq"] for e in last_two] == [10, 11]
    assert [e["seq"] for e in everything] == list(range(1, 12))


def test_history_leaves_out_events_and_deliveries(daemon, receiver, tmp_path):
    daemon.start()
    daemon.cli("app", "add", "shop", "--platform", "ios", "--bundle-id", "com.example.Shop", "--name", "Shop")
    daemon.cli("partner", "add", "shop", "localnet", "--integration", "custom", "--field", f"url={receiver.url}/pb")
    daemon.cli("postback", "add", "shop", "localnet", "install", "--method", "all")
    path = tmp_path / "in.jsonl"
    path.write_text('{"type": "install", "id": "i1", "app": "shop", "device": "d1", "time": 1796000000}\n')
    daemon.cli("send", str(path))
    receiver.wait_for(1)
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 1)
    daemon.cli("partner", "set", "shop", "localnet", "--inactive")

    entries = history(daemon)

    assert [e["kind"] for e in entries] == ["app", "partner", "postback", "partner"]
    # Between them the log contains the install, its decision and its delivery attempt.
    assert [e["seq"] for e in entries] == [1, 2, 3, 7]


def test_config_show_json_is_whole_state(daemon):
    daemon.start()
    configure_everything(daemon)

    shown = json.loads(daemon.cli("config", "show", "--json").output)

    assert shown["seq"] == last_seq(daemon)
    assert [a["app_id"] for a in shown["apps"]] == ["game", "shop"]
    shop = shown["apps"][1]
    assert [p["network"] for p in shop["partners"]] == ["examplenet", "jsonads"]
    assert [pb["event"] for pb in shop["partners"][1]["postbacks"]] == ["install", "App Open", "Purchase"]


def test_config_show_table(daemon):
    daemon.start()
    configure_everything(daemon)

    text = daemon.cli("config", "show").output

    assert text.startswith(f"configuration as of log position {last_seq(daemon)}\n")
    assert 'app shop: ios, com.example.Shop, "Shop"' in text
    assert "  partner:                       jsonads of app shop" in text
    assert "  data-controlled flag:          ignored" in text
    assert "  Purchase  5m          10  network+agency  allow only CA,US  buy" in text


def test_config_show_empty(daemon):
    daemon.start()

    text = daemon.cli("config", "show").output

    assert text.splitlines() == ["configuration as of log position 0", "no apps yet: add one with `postbackd app add`"]
