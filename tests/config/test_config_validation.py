"""Every kind of invalid configuration command is rejected with a message that names the value, and appends nothing."""

from __future__ import annotations

import json

import pytest

from tests.config.conftest import SECRET, last_seq

# (test id, CLI arguments, expected exit code, texts the message contains)
CLI_CASES = [
    ("unknown app", ["partner", "add", "nosuch", "jsonads"], 1,
     ["App 'nosuch' does not exist (existing: game, shop)", "postbackd app add"]),
    ("unknown app on set", ["app", "set", "nosuch", "--name", "X"], 1, ["App 'nosuch' does not exist"]),
    ("unknown app on show", ["app", "show", "nosuch"], 1, ["App 'nosuch' does not exist"]),
    ("unknown partner", ["postback", "add", "shop", "nosuchnet", "install"], 1,
     ["Partner 'nosuchnet' does not exist for app 'shop' (existing: examplenet, jsonads)",
      "postbackd partner add shop nosuchnet"]),
    ("unknown partner on set", ["partner", "set", "shop", "nosuchnet", "--inactive"], 1,
     ["Partner 'nosuchnet' does not exist for app 'shop'"]),
    ("unknown partner on remove", ["partner", "remove", "game", "jsonads"], 1, ["Partner 'jsonads' does not exist for app 'game' (existing: localnet)."]),
    ("unknown postback", ["postback", "set", "shop", "jsonads", "Nope", "--retries", "1"], 1,
     ["Postback 'Nope' does not exist for partner 'jsonads' of app 'shop' "
      "(existing: install, App Open, Purchase)."]),
    ("unknown integration by network", ["partner", "add", "shop", "acme"], 1,
     ["Unknown integration 'acme'", "custom, examplenet, jsonads"]),
    ("unknown integration by option", ["partner", "add", "shop", "acme", "--integration", "nope"], 1,
     ["Unknown integration 'nope'"]),
    ("unknown integration on show", ["integrations", "show", "nope"], 1, ["Unknown integration 'nope'"]),
    ("missing required field", ["partner", "add", "game", "jsonads", "--field", "advertiser_id=7"], 1,
     ["Missing required network-specific field 'api_key'"]),
    ("missing every required field", ["partner", "add", "game", "jsonads"], 1,
     ["field 'advertiser_id'", "field 'api_key'"]),
    ("field pattern mismatch", ["partner", "add", "game", "examplenet", "--field", "app_key=XYZ"], 1,
     ["The value 'XYZ' of network-specific field 'app_key' does not match the pattern '[0-9a-f]{32}'"]),
    ("unknown field", ["partner", "set", "shop", "jsonads", "--field", "colour=red"], 1,
     ["Unknown network-specific field 'colour' for integration 'jsonads'"]),
    ("empty field value", ["partner", "set", "shop", "examplenet", "--field", "sub_id="], 1,
     ["network-specific field 'sub_id': the value is empty", "--remove-field sub_id"]),
    ("field without name", ["partner", "set", "shop", "examplenet", "--field", "justavalue"], 1,
     ["expected NAME=VALUE"]),
    ("field with line break", ["partner", "set", "shop", "examplenet", "--field", "sub_id=a\nb"], 1,
     ["field 'sub_id': it contains a control character"]),
    ("remove unset field", ["partner", "set", "shop", "examplenet", "--remove-field", "colour"], 1,
     ["Cannot remove network-specific field 'colour'", "app_key, sub_id"]),
    ("remove required field", ["partner", "set", "shop", "examplenet", "--remove-field", "app_key"], 1,
     ["Missing required network-specific field 'app_key'"]),
    ("set and remove one field", ["partner", "set", "shop", "examplenet", "--field", "sub_id=x",
                                  "--remove-field", "sub_id"], 1, ["Conflicting options for network-specific field"]),
    ("integration change leaves unknown fields", ["partner", "set", "shop", "examplenet", "--integration", "custom"],
     1, ["Unknown network-specific field 'app_key' for integration 'custom'"]),
    ("invalid custom url", ["partner", "add", "game", "other", "--integration", "custom", "--field", "url=ftp://x/"],
     1, ["The URL template in network-specific field 'url' is invalid"]),
    ("invalid network id", ["partner", "add", "game", "bad net", "--integration", "custom",
                            "--field", "url=http://127.0.0.1:9/"], 1, ["Invalid network 'bad net'"]),
    ("bad platform", ["app", "add", "new", "--platform", "windows", "--bundle-id", "com.example.a", "--name", "A"],
     2, ["'windows' is not one of 'android', 'ios'"]),
    ("bad android bundle id", ["app", "add", "new", "--platform", "android", "--bundle-id", "nodots",
                               "--name", "A"], 1, ["Invalid bundle id 'nodots' for android"]),
    ("bad ios bundle id", ["app", "add", "new", "--platform", "ios", "--bundle-id", "com.example.My App",
                           "--name", "A"], 1, ["Invalid bundle id 'com.example.My App' for ios"]),
    ("bundle id for another platform", ["app", "set", "game", "--bundle-id", "com.example.my-app"], 1,
     ["Invalid bundle id 'com.example.my-app' for android"]),
    ("bad app id", ["app", "add", "my app", "--platform", "ios", "--bundle-id", "com.example.a", "--name", "A"],
     1, ["Invalid app id 'my app'"]),
    ("empty app name", ["app", "set", "shop", "--name", "  "], 1, ["Invalid app name '  ': it is empty"]),
    ("duplicate app", ["app", "add", "shop", "--platform", "ios", "--bundle-id", "com.example.a", "--name", "A"],
     1, ["App 'shop' exists already", "postbackd app set shop"]),
    ("duplicate partner", ["partner", "add", "shop", "jsonads"], 1, ["Partner 'jsonads' exists already"]),
    ("duplicate postback", ["postback", "add", "shop", "jsonads", "install"], 1,
     ["Postback 'install' exists already"]),
    ("bad country code", ["partner", "set", "shop", "jsonads", "--block", "US,XX"], 1,
     ["Unknown country code 'XX' in --block"]),
    ("bad lower-case country code", ["postback", "set", "shop", "jsonads", "Purchase", "--allow-only", "us,zz"], 1,
     ["Unknown country code 'zz' in --allow-only"]),
    ("country name instead of code", ["partner", "set", "shop", "jsonads", "--allow-only", "Germany"], 1,
     ["Unknown country code 'Germany'"]),
    ("empty country list", ["partner", "set", "shop", "jsonads", "--block", ","], 1,
     ["Missing country codes for --block", "--allow-all"]),
    ("block and allow-only", ["partner", "set", "shop", "jsonads", "--block", "US", "--allow-only", "CA"], 1,
     ["Conflicting country options --block and --allow-only"]),
    ("allow-all and block", ["postback", "set", "shop", "jsonads", "Purchase", "--allow-all", "--block", "US"], 1,
     ["Conflicting country options --allow-all and --block"]),
    ("install postback country filter", ["postback", "set", "shop", "jsonads", "install", "--block", "US"], 1,
     ["install postback of partner 'jsonads' always uses the partner's country filter"]),
    ("delay over a day", ["postback", "set", "shop", "jsonads", "Purchase", "--delay", "25h"], 1,
     ["Invalid delivery delay '25h': use realtime (0s) up to 24h"]),
    ("delay just over a day", ["postback", "set", "shop", "jsonads", "Purchase", "--delay", "24h0m1s"], 1,
     ["Invalid delivery delay '24h0m1s'"]),
    ("delay without unit", ["postback", "set", "shop", "jsonads", "Purchase", "--delay", "30"], 1,
     ["Invalid delivery delay '30'", "Add a unit, e.g. '30s'"]),
    ("delay as words", ["postback", "set", "shop", "jsonads", "Purchase", "--delay", "soon"], 1,
     ["Invalid delivery delay 'soon'"]),
    ("negative delay", ["postback", "set", "shop", "jsonads", "Purchase", "--delay", "-5s"], 1,
     ["Invalid delivery delay '-5s'"]),
    ("retries over ten", ["postback", "set", "shop", "jsonads", "Purchase", "--retries", "11"], 1,
     ["Invalid retry attempts 11: use 0 (do not retry) up to 10"]),
    ("negative retries", ["postback", "add", "shop", "examplenet", "Signup", "--retries", "-1"], 1,
     ["Invalid retry attempts -1"]),
    ("bad method", ["postback", "set", "shop", "jsonads", "Purchase", "--method", "sometimes"], 2,
     ["'sometimes' is not one of 'all', 'network', 'network+agency'"]),
    ("missing partner event name", ["postback", "add", "shop", "jsonads", "Signup"], 1,
     ["Missing partner event name for postback 'Signup' of partner 'jsonads'", "--partner-event-name"]),
    ("partner event name removed", ["postback", "set", "shop", "jsonads", "Purchase", "--partner-event-name", ""],
     1, ["Missing partner event name for postback 'Purchase'"]),
    ("empty event name", ["postback", "add", "shop", "examplenet", " "], 1, ["Invalid event name"]),
    ("nothing to change on partner", ["partner", "set", "shop", "jsonads"], 1,
     ["Nothing to change", "postbackd partner set --help"]),
    ("nothing to change on app", ["app", "set", "shop"], 1, ["Nothing to change"]),
    ("nothing to change on postback", ["postback", "set", "shop", "jsonads", "Purchase"], 1, ["Nothing to change"]),
    ("history of unknown app", ["config", "history", "--app", "nosuch"], 1,
     ["App 'nosuch' does not exist (existing: game, shop)."]),
]

# (test id, control op, arguments, texts the error contains): checks that the CLI cannot reach.
CONTROL_CASES = [
    ("bad platform", "app.add", {"app_id": "new", "platform": "windows", "bundle_id": "com.example.a", "name": "A"},
     ["Invalid platform 'windows': use 'android' or 'ios'."]),
    ("bad method", "postback.set", {"app_id": "shop", "network": "jsonads", "event": "Purchase",
                                     "method": "sometimes"},
     ["Invalid delivery method 'sometimes': use all, network or network+agency."]),
    ("bad app id", "app.add", {"app_id": "-x", "platform": "ios", "bundle_id": "com.example.a", "name": "A"},
     ["Invalid app id '-x'"]),
    ("retries as text", "postback.set", {"app_id": "shop", "network": "jsonads", "event": "Purchase",
                                          "retries": "3"}, ["Invalid retries '3': expected int"]),
    ("retries as bool", "postback.set", {"app_id": "shop", "network": "jsonads", "event": "Purchase",
                                          "retries": True}, ["Invalid retries True"]),
    ("delay over a day in seconds", "postback.set", {"app_id": "shop", "network": "jsonads", "event": "Purchase",
                                                      "delay": 86401}, ["Invalid delivery delay 86401"]),
    ("active as text", "partner.set", {"app_id": "shop", "network": "jsonads", "active": "no"},
     ["Invalid active 'no': expected bool"]),
    ("missing argument", "partner.add", {"app_id": "shop"}, ["Missing argument 'network'"]),
    ("fields as one string", "partner.set", {"app_id": "shop", "network": "jsonads", "fields": "a=b"},
     ["Invalid fields"]),
]


@pytest.mark.parametrize(("args", "exit_code", "expected"), [case[1:] for case in CLI_CASES],
                         ids=[case[0] for case in CLI_CASES])
def test_invalid_command_rejected(configured, args, exit_code, expected):
    before = last_seq(configured)

    result = configured.cli(*args, expect=exit_code)

    for text in expected:
        assert text in result.output
    assert last_seq(configured) == before


@pytest.mark.parametrize(("op", "args", "expected"), [case[1:] for case in CONTROL_CASES],
                         ids=[case[0] for case in CONTROL_CASES])
def test_invalid_control_request_rejected(configured, op, args, expected):
    before = last_seq(configured)

    response = configured.control(op, **args)

    assert response["ok"] is False
    for text in expected:
        assert text in response["error"]
    assert last_seq(configured) == before


def test_secret_not_in_pattern_error(configured):
    before = last_seq(configured)

    result = configured.cli("partner", "set", "shop", "jsonads", "--field", "api_key=short-Secret-Value!", expect=1)

    assert "The secret value of network-specific field 'api_key' does not match" in result.output
    assert "short-Secret-Value!" not in result.output
    assert last_seq(configured) == before


def test_field_without_name_not_echoed(configured):
    result = configured.cli("partner", "set", "shop", "jsonads", "--field", SECRET, expect=1)

    assert "expected NAME=VALUE" in result.output
    assert SECRET not in result.output


def test_rejected_commands_leave_daemon_usable(configured):
    configured.cli("partner", "set", "shop", "jsonads", "--block", "XX", expect=1)

    result = configured.cli("partner", "show", "shop", "jsonads", "--json")

    assert json.loads(result.output)["countries"]["countries"] == ["BY", "RU"]
