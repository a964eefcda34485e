"""``config export`` and ``config import``: round trips, diffs, dry runs and rejected files."""

from __future__ import annotations

import json
import tomllib

from tests.config.conftest import OTHER_SECRET, SECRET, configure_everything, last_seq


def export(daemon, *options: str) -> str:
    return daemon.cli("config", "export", *options).output


def history(daemon) -> list[dict]:
    return json.loads(daemon.cli("config", "history", "--json").output)


def test_export_import_export_gives_same_file(daemon, second_daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    second_daemon.start()
    clear = export(daemon, "--show-secrets")
    path = tmp_path / "config.toml"
    path.write_text(clear)

    second_daemon.cli("config", "import", str(path))

    assert export(second_daemon, "--show-secrets") == clear
    assert export(second_daemon) == export(daemon)
    assert json.loads(second_daemon.cli("config", "show", "--json").output)["apps"] == (
        json.loads(daemon.cli("config", "show", "--json").output)["apps"]
    )


def test_import_of_current_export_changes_nothing(daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    path = tmp_path / "config.toml"
    path.write_text(export(daemon))
    before = last_seq(daemon)

    result = daemon.cli("config", "import", str(path))

    assert result.output.strip() == f"no changes: the configuration matches {path}"
    assert last_seq(daemon) == before


def test_import_prints_diff_and_appends_one_batch(daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    text = export(daemon)
    text = text.replace('name = "Shop"', 'name = "Shop Deluxe"')
    text = text.replace("active = false", "active = true")
    text = text.replace('partner_event_name = "buy"', 'partner_event_name = "purchase"')
    text = text.replace('[apps.shop.partners.jsonads.postbacks."App Open"]\ndelay = "0s"\nretries = 3\n'
                        'method = "all"\nblock = [\n    "FR",\n]\npartner_event_name = "open"\n\n', "")
    game_partner = text.index("[apps.game.partners.localnet]")
    text = text[:game_partner] + text[text.index("[apps.shop]"):]
    text += '\n[apps.shop.partners.examplenet.postbacks.Signup]\nretries = 2\n'
    path = tmp_path / "config.toml"
    path.write_text(text)
    before = last_seq(daemon)

    result = daemon.cli("config", "import", str(path))

    assert result.output.splitlines() == [
        'set app shop: name "Shop" -> "Shop Deluxe"',
        "remove partner localnet of app game and its postbacks install",
        "remove postback App Open of partner jsonads of app shop",
        "set partner examplenet of app shop: active no -> yes",
        "add postback Signup of partner examplenet of app shop: delay 0s; retries 2; method network; "
        "country filter allow all",
        'set postback Purchase of partner jsonads of app shop: partner event name "buy" -> "purchase"',
        f"imported 6 change(s) from {path}",
    ]
    assert last_seq(daemon) == before + 6
    changes = history(daemon)[-6:]
    assert [c["seq"] for c in changes] == list(range(before + 1, before + 7))
    assert {c["command"] for c in changes} == {"config.import"}
    assert '[apps.shop.partners.examplenet.postbacks.Signup]\ndelay = "0s"\nretries = 2\n' in export(daemon)


def test_import_dry_run_appends_nothing(daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    path = tmp_path / "config.toml"
    path.write_text(export(daemon).replace("retries = 10", "retries = 4"))
    before = last_seq(daemon)

    result = daemon.cli("config", "import", "--dry-run", str(path))

    assert result.output.splitlines() == [
        "set postback Purchase of partner jsonads of app shop: retries 10 -> 4",
        "dry run: 1 change(s) listed, nothing appended",
    ]
    assert last_seq(daemon) == before
    assert "retries = 10" in export(daemon)


def test_import_keeps_masked_secret(daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    path = tmp_path / "config.toml"
    path.write_text(export(daemon).replace('advertiser_id = "42"', 'advertiser_id = "43"'))

    result = daemon.cli("config", "import", str(path))

    assert result.output.splitlines()[0] == 'set partner jsonads of app shop: field advertiser_id "42" -> "43"'
    assert f'api_key = "{SECRET}"' in export(daemon, "--show-secrets")


def test_import_changes_secret(daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    path = tmp_path / "config.toml"
    path.write_text(export(daemon, "--show-secrets").replace(SECRET, OTHER_SECRET))

    result = daemon.cli("config", "import", str(path))

    assert result.output.splitlines()[0] == (
        "set partner jsonads of app shop: field api_key changed (secret, not shown)"
    )
    assert OTHER_SECRET not in result.output
    assert f'api_key = "{OTHER_SECRET}"' in export(daemon, "--show-secrets")


def test_import_masked_secret_without_value_rejected(daemon, second_daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    second_daemon.start()
    path = tmp_path / "config.toml"
    path.write_text(export(daemon))

    result = second_daemon.cli("config", "import", str(path), expect=1)

    assert "[apps.shop.partners.jsonads] The secret network-specific field 'api_key' is masked" in result.output
    assert "export with --show-secrets" in result.output
    assert last_seq(second_daemon) == 0


def test_import_into_empty_daemon_appends_in_order(second_daemon, daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    second_daemon.start()
    path = tmp_path / "config.toml"
    path.write_text(export(daemon, "--show-secrets"))

    result = second_daemon.cli("config", "import", str(path))

    lines = result.output.splitlines()
    assert lines[0].startswith("add app game:")
    assert lines[1].startswith("add app shop:")
    assert lines[-1] == f"imported 11 change(s) from {path}"
    assert SECRET not in result.output
    assert last_seq(second_daemon) == 11


def test_import_rejects_file_with_problems(daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    text = export(daemon)
    text = text.replace('name = "Game"', 'name = "Game 2"')
    text = text.replace('delay = "5m"', 'delay = "2d"')
    text = text.replace('app_key = "0123456789abcdef0123456789abcdef"', 'app_key = "nothex"')
    text = text.replace('"CA",', '"CA",\n    "XX",')
    text += '\n[apps.new]\nplatform = "windows"\nbundle_id = "com.example.new"\nname = "New"\n'
    text += '\n[apps.shop.partners.jsonads.postbacks.Signup]\nmethod = "sometimes"\n'
    path = tmp_path / "config.toml"
    path.write_text(text)
    before = last_seq(daemon)

    result = daemon.cli("config", "import", str(path), expect=1)

    assert f"{path} has 6 problem(s); nothing was changed:" in result.output
    assert "[apps.new] Invalid platform 'windows'" in result.output
    assert "[apps.shop.partners.examplenet] The value 'nothex' of network-specific field 'app_key'" in result.output
    assert "[apps.shop.partners.jsonads.postbacks.Purchase] Invalid delivery delay '2d'" in result.output
    assert "[apps.shop.partners.jsonads.postbacks.Purchase] Unknown country code 'XX' in allow_only" in result.output
    assert "[apps.shop.partners.jsonads.postbacks.Signup] Invalid delivery method 'sometimes'" in result.output
    assert "[apps.shop.partners.jsonads.postbacks.Signup] Missing partner event name" in result.output
    assert last_seq(daemon) == before
    assert 'name = "Game"' in export(daemon)


def test_import_reports_bad_country_and_unknown_key(daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    text = export(daemon).replace('"CA",', '"CA",\n    "XX",').replace("retries = 0", "retries = 0\ncolour = 1")
    path = tmp_path / "config.toml"
    path.write_text(text)

    result = daemon.cli("config", "import", str(path), expect=1)

    assert "[apps.shop.partners.jsonads.postbacks.Purchase] Unknown country code 'XX' in allow_only" in result.output
    assert "[apps.shop.partners.jsonads.postbacks.install] Unknown key 'colour'. Valid keys here: delay, retries, " \
        "method, block, allow_only, partner_event_name." in result.output


def test_import_lists_every_problem_in_one_run(daemon, tmp_path):
    daemon.start()
    daemon.cli("app", "add", "demo-app", "--platform", "android", "--bundle-id", "com.example.demo", "--name", "Demo")
    path = tmp_path / "config.toml"
    path.write_text(
        '[apps.demo-app]\nplatform = "android"\nbundle_id = "com.example.demo"\nname = "Demo"\n\n'
        '[apps.demo-app.partners.examplenet]\nrespect_data_controled = false\nblock = ["UK"]\n\n'
        '[apps.demo-app.partners.examplenet.fields]\napp_key = "nothex"\n\n'
        '[apps.demo-app.partners.examplenet.postbacks.Purchase]\ndelay = "30 s"\nmethod = "All"\n'
    )
    before = last_seq(daemon)

    result = daemon.cli("config", "import", str(path), expect=1)

    partner = "[apps.demo-app.partners.examplenet]"
    postback = "[apps.demo-app.partners.examplenet.postbacks.Purchase]"
    problems = [line for line in result.output.splitlines() if line.startswith("[")]
    assert f"{path} has 5 problem(s); nothing was changed:" in result.output
    assert len(problems) == 5
    assert f"{partner} Unknown key 'respect_data_controled'. Did you mean 'respect_data_controlled'?" in problems
    assert any(line.startswith(f"{partner} Unknown country code 'UK' in block") for line in problems)
    assert any("The United Kingdom is GB." in line for line in problems)
    assert any(line.startswith(f"{partner} The value 'nothex' of network-specific field 'app_key'")
               for line in problems)
    delay_problem = next(line for line in problems if line.startswith(f"{postback} Invalid delivery delay '30 s'"))
    assert delay_problem.endswith("Did you mean '30s'?")
    assert f"{postback} Invalid delivery method 'All': use all, network or network+agency. Did you mean 'all'?" \
        in problems
    assert last_seq(daemon) == before


def test_import_checks_tables_under_invalid_ones(daemon, tmp_path):
    daemon.start()
    path = tmp_path / "config.toml"
    path.write_text(
        '[apps.shop]\nplatform = "ios"\nname = 3\ncolour = "red"\n\n'
        '[apps.shop.partners.jsonads]\nactive = "yes"\n\n'
        '[apps.shop.partners.jsonads.postbacks.install]\nretries = 11\nallow_only = ["US"]\n'
    )

    result = daemon.cli("config", "import", str(path), expect=1)

    assert f"{path} has 7 problem(s); nothing was changed:" in result.output
    assert "[apps.shop] Unknown key 'colour'. Valid keys here: platform, bundle_id, name, partners." in result.output
    assert "[apps.shop] Missing key 'bundle_id'." in result.output
    assert "[apps.shop.name] Expected `str`, got `int`." in result.output
    assert "[apps.shop.partners.jsonads.active] Expected `bool`, got `str`." in result.output
    assert "[apps.shop.partners.jsonads] Missing required network-specific field 'advertiser_id'" in result.output
    assert "[apps.shop.partners.jsonads.postbacks.install] Invalid retry attempts 11" in result.output
    assert "[apps.shop.partners.jsonads.postbacks.install] The install postback of partner 'jsonads' always uses " \
        "the partner's country filter." in result.output
    assert last_seq(daemon) == 0


def test_import_rejects_non_table_entries(daemon, tmp_path):
    daemon.start()
    path = tmp_path / "config.toml"
    path.write_text('title = "mine"\n[apps]\nshop = 3\n')

    result = daemon.cli("config", "import", str(path), expect=1)

    assert "[top level] Unknown key 'title'. Valid keys here: apps." in result.output
    assert "[apps.shop] Expected a table, got `int`." in result.output
    assert last_seq(daemon) == 0


def test_import_reports_wrong_type_with_location(daemon, tmp_path):
    daemon.start()
    path = tmp_path / "config.toml"
    path.write_text('[apps.shop]\nplatform = "ios"\nbundle_id = "com.example.Shop"\nname = 3\n')

    result = daemon.cli("config", "import", str(path), expect=1)

    assert "[apps.shop.name] Expected `str`, got `int`." in result.output
    assert last_seq(daemon) == 0


def test_import_rejects_leaving_out_an_app(daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    text = export(daemon)
    path = tmp_path / "config.toml"
    path.write_text(text[:text.index("[apps.game]")] + text[text.index("[apps.shop]"):])
    before = last_seq(daemon)

    result = daemon.cli("config", "import", str(path), expect=1)

    assert "The file leaves out app(s) game, but apps cannot be removed." in result.output
    assert last_seq(daemon) == before


def test_import_rejects_invalid_toml(daemon, tmp_path):
    daemon.start()
    path = tmp_path / "config.toml"
    path.write_text('[apps.shop]\nplatform = "ios\n')

    result = daemon.cli("config", "import", str(path), expect=1)

    assert f"Invalid TOML in {path}:" in result.output
    assert "line 2" in result.output
    assert last_seq(daemon) == 0


def test_import_missing_file(daemon, tmp_path):
    daemon.start()

    result = daemon.cli("config", "import", str(tmp_path / "nope.toml"), expect=2)

    assert "does not exist" in result.output


def test_export_is_valid_toml_with_every_setting(daemon):
    daemon.start()
    configure_everything(daemon)

    data = tomllib.loads(export(daemon))

    jsonads = data["apps"]["shop"]["partners"]["jsonads"]
    assert jsonads["respect_data_controlled"] is False
    assert jsonads["block"] == ["BY", "RU"]
    assert jsonads["fields"] == {"advertiser_id": "42", "api_key": "***"}
    assert jsonads["postbacks"]["Purchase"] == {
        "delay": "5m", "retries": 10, "method": "network+agency", "allow_only": ["CA", "US"],
        "partner_event_name": "buy",
    }
    examplenet = data["apps"]["shop"]["partners"]["examplenet"]
    assert examplenet["active"] is False
    assert examplenet["apply_countries_to_all_events"] is True
    assert examplenet["postbacks"]["install"]["delay"] == "1h30m"


def test_export_of_empty_configuration(daemon, tmp_path):
    daemon.start()

    text = export(daemon)
    path = tmp_path / "empty.toml"
    path.write_text(text)

    assert tomllib.loads(text) == {}
    assert daemon.cli("config", "import", str(path)).output.strip() == f"no changes: the configuration matches {path}"


def test_import_rejects_block_and_allow_only(daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    path = tmp_path / "config.toml"
    path.write_text(export(daemon).replace('block = [\n    "BY",', 'allow_only = ["US"]\nblock = [\n    "BY",'))
    before = last_seq(daemon)

    result = daemon.cli("config", "import", str(path), expect=1)

    assert "[apps.shop.partners.jsonads] Conflicting keys block and allow_only" in result.output
    assert last_seq(daemon) == before
