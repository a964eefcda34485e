"""Apps, partners, postbacks and integrations through the real CLI and a daemon subprocess."""

from __future__ import annotations

import json

from tests.config.conftest import APP_KEY, configure_everything, last_seq
from tests.conftest import setup_app, write_lines


def show_json(daemon, *args: str):
    return json.loads(daemon.cli(*args, "--json").output)


def test_app_set_changes_only_given_settings(daemon):
    daemon.start()
    daemon.cli("app", "add", "shop", "--platform", "ios", "--bundle-id", "com.example.Shop", "--name", "Shop")

    result = daemon.cli("app", "set", "shop", "--platform", "android", "--bundle-id", "com.example.shop")

    assert result.output.strip() == (
        "set app shop: platform ios -> android; bundle id com.example.Shop -> com.example.shop"
    )
    shown = show_json(daemon, "app", "show", "shop")
    assert shown["platform"] == "android"
    assert shown["bundle_id"] == "com.example.shop"
    assert shown["name"] == "Shop"


def test_app_set_same_value_appends_nothing(daemon):
    daemon.start()
    daemon.cli("app", "add", "shop", "--platform", "ios", "--bundle-id", "com.example.Shop", "--name", "Shop")
    before = last_seq(daemon)

    result = daemon.cli("app", "set", "shop", "--name", "Shop")

    assert result.output.strip() == "set app shop: no change (nothing appended)"
    assert last_seq(daemon) == before


def test_app_list_table_and_json(daemon):
    daemon.start()
    configure_everything(daemon)

    table = daemon.cli("app", "list").output.splitlines()
    apps = show_json(daemon, "app", "list")

    assert table[0].split() == ["app", "platform", "bundle", "id", "name", "partners"]
    assert table[1].split() == ["game", "android", "com.example.game", "Game", "localnet"]
    assert table[2].split() == ["shop", "ios", "com.example.Shop", "Shop", "examplenet,", "jsonads"]
    assert [a["app_id"] for a in apps] == ["game", "shop"]
    assert apps[1]["partners"] == ["examplenet", "jsonads"]


def test_app_show_lists_partners(daemon):
    daemon.start()
    configure_everything(daemon)

    shown = show_json(daemon, "app", "show", "shop")
    table = daemon.cli("app", "show", "shop").output

    assert [p["network"] for p in shown["partners"]] == ["examplenet", "jsonads"]
    assert "bundle id: com.example.Shop" in table
    assert "jsonads     jsonads      yes     block BY,RU       install, App Open, Purchase" in table


def test_partner_add_stores_every_setting(daemon):
    daemon.start()
    configure_everything(daemon)

    partner = show_json(daemon, "partner", "show", "shop", "examplenet")

    assert partner["integration"] == "examplenet"
    assert partner["active"] is False
    assert partner["respect_data_controlled"] is True
    assert partner["countries"]["mode"] == "allow_only"
    assert partner["countries"]["countries"] == ["AT", "DE"]
    assert partner["apply_countries_to_all_events"] is True
    assert partner["fields"] == {"app_key": APP_KEY, "sub_id": "s-1"}


def test_partner_integration_defaults_to_network(daemon):
    daemon.start()
    daemon.cli("app", "add", "shop", "--platform", "ios", "--bundle-id", "com.example.Shop", "--name", "Shop")

    daemon.cli("partner", "add", "shop", "examplenet", "--field", f"app_key={APP_KEY}")

    assert show_json(daemon, "partner", "show", "shop", "examplenet")["integration"] == "examplenet"


def test_partner_set_each_option(daemon):
    daemon.start()
    configure_everything(daemon)

    steps = [
        (["--active"], "active", True),
        (["--ignore-data-controlled"], "respect_data_controlled", False),
        (["--respect-data-controlled"], "respect_data_controlled", True),
        (["--no-apply-countries-to-all-events"], "apply_countries_to_all_events", False),
        (["--apply-countries-to-all-events"], "apply_countries_to_all_events", True),
        (["--inactive"], "active", False),
    ]
    for options, key, expected in steps:
        daemon.cli("partner", "set", "shop", "examplenet", *options)
        assert show_json(daemon, "partner", "show", "shop", "examplenet")[key] is expected, options


def test_partner_country_filter_modes(daemon):
    daemon.start()
    configure_everything(daemon)

    daemon.cli("partner", "set", "shop", "jsonads", "--block", "us,US", "--block", " de ")
    blocked = show_json(daemon, "partner", "show", "shop", "jsonads")["countries"]
    daemon.cli("partner", "set", "shop", "jsonads", "--allow-only", "gb")
    allowed = show_json(daemon, "partner", "show", "shop", "jsonads")["countries"]
    daemon.cli("partner", "set", "shop", "jsonads", "--allow-all")
    cleared = show_json(daemon, "partner", "show", "shop", "jsonads")["countries"]

    assert blocked == {"mode": "block", "countries": ["DE", "US"], "text": "block DE,US"}
    assert allowed == {"mode": "allow_only", "countries": ["GB"], "text": "allow only GB"}
    assert cleared == {"mode": "allow_all", "countries": [], "text": "allow all"}


def test_partner_set_field_keeps_other_fields(daemon):
    daemon.start()
    configure_everything(daemon)

    result = daemon.cli("partner", "set", "shop", "examplenet", "--field", "sub_id=s-2")

    assert result.output.strip() == 'set partner examplenet of app shop: field sub_id "s-1" -> "s-2"'
    fields = show_json(daemon, "partner", "show", "shop", "examplenet")["fields"]
    assert fields == {"app_key": APP_KEY, "sub_id": "s-2"}


def test_partner_remove_field(daemon):
    daemon.start()
    configure_everything(daemon)

    result = daemon.cli("partner", "set", "shop", "examplenet", "--remove-field", "sub_id")

    assert result.output.strip() == "set partner examplenet of app shop: field sub_id removed"
    assert show_json(daemon, "partner", "show", "shop", "examplenet")["fields"] == {"app_key": APP_KEY}


def test_partner_set_integration(daemon):
    daemon.start()
    configure_everything(daemon)

    daemon.cli("partner", "set", "game", "localnet", "--integration", "examplenet", "--remove-field", "url",
               "--remove-field", "method", "--field", f"app_key={APP_KEY}")

    partner = show_json(daemon, "partner", "show", "game", "localnet")
    assert partner["integration"] == "examplenet"
    assert partner["fields"] == {"app_key": APP_KEY}


def test_partner_integration_needing_event_names(daemon):
    daemon.start()
    configure_everything(daemon)
    daemon.cli("postback", "add", "game", "localnet", "Purchase")
    before = last_seq(daemon)

    result = daemon.cli("partner", "set", "game", "localnet", "--integration", "jsonads", "--remove-field", "url",
                        "--remove-field", "method", "--field", "advertiser_id=1", "--field",
                        "api_key=abcdefabcdefabcdefabcdef", expect=1)

    assert "Missing partner event name for postback 'Purchase' of partner 'localnet'" in result.output
    assert last_seq(daemon) == before


def test_partner_remove_removes_postbacks(daemon):
    daemon.start()
    configure_everything(daemon)

    result = daemon.cli("partner", "remove", "shop", "jsonads")

    assert result.output.strip() == "remove partner jsonads of app shop and its postbacks install, App Open, Purchase"
    assert [p["network"] for p in show_json(daemon, "partner", "list", "shop")] == ["examplenet"]
    daemon.cli("partner", "show", "shop", "jsonads", expect=1)
    daemon.cli("partner", "add", "shop", "jsonads", "--field", "advertiser_id=1",
               "--field", "api_key=abcdefabcdefabcdefabcdef")
    assert show_json(daemon, "partner", "show", "shop", "jsonads")["postbacks"] == []


def test_partner_remove_reports_scheduled_postbacks(daemon, receiver, tmp_path):
    daemon.start()
    setup_app(daemon, receiver, events=("install",))
    daemon.cli("postback", "set", "demo-app", "localnet", "install", "--delay", "1h")
    install = {"type": "install", "id": "i1", "app": "demo-app", "device": "d1", "time": "2026-12-01T10:00:00Z"}
    daemon.cli("send", str(write_lines(tmp_path / "in.jsonl", [install])))
    daemon.wait_status(lambda s: s["pending"] == 1)

    result = daemon.cli("partner", "remove", "demo-app", "localnet")

    assert "1 postback(s) to localnet were already scheduled. They fail with render_error" in result.output


def test_partner_list_table_and_filter(daemon):
    daemon.start()
    configure_everything(daemon)

    table = daemon.cli("partner", "list").output.splitlines()
    only_game = show_json(daemon, "partner", "list", "game")

    assert table[0].split()[:4] == ["app", "partner", "integration", "active"]
    assert [line.split()[:2] for line in table[1:]] == [["game", "localnet"], ["shop", "examplenet"],
                                                         ["shop", "jsonads"]]
    assert [(p["app_id"], p["network"]) for p in only_game] == [("game", "localnet")]


def test_postback_add_stores_every_setting(daemon):
    daemon.start()
    configure_everything(daemon)

    postbacks = {p["event"]: p for p in show_json(daemon, "postback", "list", "shop", "jsonads")}

    assert list(postbacks) == ["install", "App Open", "Purchase"]
    purchase = postbacks["Purchase"]
    assert purchase["delay"] == "5m"
    assert purchase["delay_seconds"] == 300.0
    assert purchase["retries"] == 10
    assert purchase["method"] == "network+agency"
    assert purchase["countries"]["countries"] == ["CA", "US"]
    assert purchase["partner_event_name"] == "buy"
    assert postbacks["install"]["retries"] == 0
    assert postbacks["App Open"]["countries"]["mode"] == "block"


def test_postback_defaults(daemon):
    daemon.start()
    configure_everything(daemon)

    daemon.cli("postback", "add", "shop", "examplenet", "Signup")

    signup = show_json(daemon, "postback", "list", "shop", "examplenet")[-1]
    assert signup["event"] == "Signup"
    assert signup["delay"] == "0s"
    assert signup["retries"] == 3
    assert signup["method"] == "network"
    assert signup["countries"]["mode"] == "allow_all"
    assert signup["partner_event_name"] is None


def test_postback_set_each_option(daemon):
    daemon.start()
    configure_everything(daemon)

    result = daemon.cli("postback", "set", "shop", "jsonads", "Purchase", "--delay", "realtime", "--retries", "0",
                        "--method", "all", "--allow-all", "--partner-event-name", "order")

    assert result.output.strip() == (
        "set postback Purchase of partner jsonads of app shop: delay 5m -> 0s; retries 10 -> 0; "
        'method network+agency -> all; country filter allow only CA,US -> allow all; partner event name "buy" -> "order"'
    )
    purchase = show_json(daemon, "postback", "list", "shop", "jsonads")[-1]
    assert purchase["delay_seconds"] == 0.0
    assert purchase["retries"] == 0
    assert purchase["method"] == "all"
    assert purchase["countries"]["mode"] == "allow_all"
    assert purchase["partner_event_name"] == "order"


def test_postback_delay_limits_accepted(daemon):
    daemon.start()
    configure_everything(daemon)

    for text, seconds in (("0s", 0.0), ("24h", 86400.0), ("1.5s", 1.5), ("10m", 600.0), ("23h59m59s", 86399.0)):
        daemon.cli("postback", "set", "shop", "examplenet", "Level Up", "--delay", text)
        assert show_json(daemon, "postback", "list", "shop", "examplenet")[-1]["delay_seconds"] == seconds, text


def test_postback_remove_partner_event_name(daemon):
    daemon.start()
    configure_everything(daemon)
    daemon.cli("postback", "set", "shop", "examplenet", "Level Up", "--partner-event-name", "level")

    result = daemon.cli("postback", "set", "shop", "examplenet", "Level Up", "--partner-event-name", "")

    assert result.output.strip().endswith("partner event name removed")
    assert show_json(daemon, "postback", "list", "shop", "examplenet")[-1]["partner_event_name"] is None


def test_postback_remove(daemon):
    daemon.start()
    configure_everything(daemon)

    result = daemon.cli("postback", "remove", "shop", "jsonads", "App Open")

    assert result.output.strip() == "remove postback App Open of partner jsonads of app shop"
    events = [p["event"] for p in show_json(daemon, "postback", "list", "shop", "jsonads")]
    assert events == ["install", "Purchase"]


def test_postback_list_marks_partner_filter(daemon):
    daemon.start()
    configure_everything(daemon)

    lines = daemon.cli("postback", "list", "shop", "jsonads").output.splitlines()

    assert lines[1].split()[:5] == ["install", "0s", "0", "network", "partner's"]
    assert "allow only CA,US  buy" in lines[3]


def test_integrations_list_includes_operator_files(daemon):
    integrations_dir = daemon.data_dir / "integrations"
    integrations_dir.mkdir(parents=True)
    (integrations_dir / "acme.toml").write_text(
        'id = "acme"\nname = "Acme Ads"\n\n[[fields]]\nname = "token"\nrequired = true\nsecret = true\n\n'
        '[install]\nurl = "https://acme.example/i?t={field.token}"\n\n'
        '[event]\nurl = "https://acme.example/e?t={field.token}&e={event_name}"\n'
    )
    daemon.start()

    listed = show_json(daemon, "integrations", "list")
    table = daemon.cli("integrations", "list").output

    assert [i["id"] for i in listed] == ["acme", "custom", "examplenet", "jsonads"]
    assert listed[0]["source"] == str(integrations_dir / "acme.toml")
    assert listed[0]["secret_fields"] == ["token"]
    assert "acme        Acme Ads" in table


def test_integrations_show(daemon):
    daemon.start()

    shown = show_json(daemon, "integrations", "show", "jsonads")
    text = daemon.cli("integrations", "show", "jsonads").output

    assert [f["name"] for f in shown["fields"] if f["required"]] == ["advertiser_id", "api_key"]
    assert shown["event_names"] == "required"
    assert shown["install"]["headers"] == {"X-Api-Key": "{field.api_key}"}
    assert "api_key        yes       yes     [A-Za-z0-9]{24,64}" in text
    assert "install request: POST https://api.jsonads.example/v2/advertisers/{field.advertiser_id}/installs" in text
    assert "  X-Api-Key: {field.api_key}" in text


def test_country_filter_takes_effect(daemon, receiver, tmp_path):
    daemon.start()
    setup_app(daemon, receiver, events=("install",))
    daemon.cli("partner", "set", "demo-app", "localnet", "--block", "de")

    def install(event_id: str, device: str) -> dict:
        return {"type": "install", "id": event_id, "app": "demo-app", "device": device,
                "time": "2026-12-01T10:00:00Z", "country": "DE"}

    daemon.cli("send", str(write_lines(tmp_path / "one.jsonl", [install("i1", "d1")])))
    daemon.wait_status(lambda s: s["partners"][0]["suppressed"] == 1)
    daemon.cli("partner", "set", "demo-app", "localnet", "--allow-all")
    daemon.cli("send", str(write_lines(tmp_path / "two.jsonl", [install("i2", "d2")])))

    requests = receiver.wait_for(1)
    assert [r["query"]["id"] for r in requests] == ["i2"]
