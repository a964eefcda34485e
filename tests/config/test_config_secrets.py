"""Secret network-specific fields are stored but never printed, except by ``config export --show-secrets``."""

from __future__ import annotations

import json
import shutil

from tests.config.conftest import OTHER_SECRET, SECRET, configure_everything

READ_COMMANDS = [
    ["partner", "show", "shop", "jsonads"],
    ["partner", "list"],
    ["partner", "list", "shop"],
    ["app", "show", "shop"],
    ["app", "list"],
    ["postback", "list", "shop", "jsonads"],
    ["config", "show"],
    ["config", "history"],
]


def test_read_commands_mask_secret(daemon):
    daemon.start()
    configure_everything(daemon)
    daemon.cli("partner", "set", "shop", "jsonads", "--field", f"api_key={OTHER_SECRET}")

    for args in READ_COMMANDS:
        for options in ([], ["--json"]):
            output = daemon.cli(*args, *options).output
            assert SECRET not in output, args + options
            assert OTHER_SECRET not in output, args + options


def test_show_prints_mask_in_place_of_secret(daemon):
    daemon.start()
    configure_everything(daemon)

    shown = json.loads(daemon.cli("partner", "show", "shop", "jsonads", "--json").output)
    table = daemon.cli("partner", "show", "shop", "jsonads").output

    assert shown["fields"] == {"advertiser_id": "42", "api_key": "***"}
    assert "fields:                        advertiser_id=42, api_key=***" in table


def test_history_masks_secret_in_change_and_record(daemon):
    daemon.start()
    configure_everything(daemon)

    daemon.cli("partner", "set", "shop", "jsonads", "--field", f"api_key={OTHER_SECRET}")

    entries = json.loads(daemon.cli("config", "history", "--json").output)
    added = next(e for e in entries if e["change"].startswith("add partner jsonads"))
    changed = entries[-1]
    assert "field api_key ***" in added["change"]
    assert added["record"]["partner"]["fields"] == {"advertiser_id": "42", "api_key": "***"}
    assert changed["change"] == "set partner jsonads of app shop: field api_key changed (secret, not shown)"
    assert changed["record"]["partner"]["fields"]["api_key"] == "***"


def test_export_masks_secret_unless_asked(daemon):
    daemon.start()
    configure_everything(daemon)

    masked = daemon.cli("config", "export").output
    clear = daemon.cli("config", "export", "--show-secrets").output

    assert SECRET not in masked
    assert 'api_key = "***"' in masked
    assert f'api_key = "{SECRET}"' in clear
    assert masked == clear.replace(SECRET, "***")


def test_command_results_and_errors_mask_secret(daemon):
    daemon.start()
    configure_everything(daemon)

    changed = daemon.cli("partner", "set", "shop", "jsonads", "--field", f"api_key={OTHER_SECRET}")
    rejected = daemon.cli("partner", "set", "shop", "jsonads", "--field", f"api_key={SECRET}!", expect=1)
    added = daemon.cli("partner", "add", "game", "jsonads", "--field", "advertiser_id=1",
                       "--field", f"api_key={SECRET}")

    assert OTHER_SECRET not in changed.output
    assert SECRET not in rejected.output
    assert "The secret value of network-specific field 'api_key'" in rejected.output
    assert SECRET not in added.output
    assert "field api_key ***" in added.output


def test_daemon_log_never_contains_secret(daemon, tmp_path):
    daemon.start()
    configure_everything(daemon)
    daemon.cli("partner", "set", "shop", "jsonads", "--field", f"api_key={OTHER_SECRET}")
    daemon.cli("partner", "set", "shop", "jsonads", "--field", f"api_key={SECRET}!", expect=1)
    path = tmp_path / "config.toml"
    path.write_text(daemon.cli("config", "export", "--show-secrets").output.replace(OTHER_SECRET, SECRET))
    daemon.cli("config", "import", str(path))
    daemon.cli("config", "history")
    daemon.stop()

    log = daemon.log()

    assert "config change partner.set" in log
    assert "config change config.import" in log
    assert SECRET not in log
    assert OTHER_SECRET not in log


def test_unknown_integration_masks_every_field(daemon):
    integrations_dir = daemon.data_dir / "integrations"
    integrations_dir.mkdir(parents=True)
    (integrations_dir / "acme.toml").write_text(
        'id = "acme"\nname = "Acme Ads"\n\n[[fields]]\nname = "account"\n\n'
        '[install]\nurl = "https://acme.example/i?a={field.account}"\n\n'
        '[event]\nurl = "https://acme.example/e?a={field.account}"\n'
    )
    daemon.start()
    daemon.cli("app", "add", "shop", "--platform", "ios", "--bundle-id", "com.example.Shop", "--name", "Shop")
    daemon.cli("partner", "add", "shop", "acme", "--field", "account=acct-7")
    daemon.stop()
    shutil.rmtree(integrations_dir)
    daemon.start()

    shown = json.loads(daemon.cli("partner", "show", "shop", "acme", "--json").output)
    exported = daemon.cli("config", "export").output
    history = daemon.cli("config", "history").output

    assert shown["integration"] == "acme"
    assert shown["fields"] == {"account": "***"}
    assert "acct-7" not in exported
    assert "acct-7" not in history
