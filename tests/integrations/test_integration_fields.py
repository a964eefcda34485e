"""Checking a partner's network-specific fields against its integration."""

import pytest

from postbackd.integrations import IntegrationError, load_catalog

ACME = """\
id = "acme"
name = "Acme Ads"

[[fields]]
name = "app_key"
required = true
description = "App key, four lower-case letters"
pattern = "[a-z]{4}"

[[fields]]
name = "token"
secret = true
pattern = "[0-9]{6}"

[[fields]]
name = "label"

[install]
url = "https://acme.example/i?k={field.app_key}&t={field.token}"

[event]
url = "https://acme.example/e?k={field.app_key}&e={event_name}"
"""


@pytest.fixture
def acme(load_text):
    return load_text(ACME)


@pytest.fixture(scope="module")
def custom():
    return load_catalog(None).get("custom")


def check_error(integration, fields) -> str:
    with pytest.raises(IntegrationError) as info:
        integration.check_fields(fields)
    return str(info.value)


def test_valid_fields_pass(acme):
    acme.check_fields({"app_key": "abcd", "token": "123456", "label": "free text"})
    acme.check_fields({"app_key": "abcd"})


def test_missing_required_field(acme):
    message = check_error(acme, {"token": "123456"})

    assert "Missing required network-specific field 'app_key'" in message
    assert "(App key, four lower-case letters)" in message
    assert "'acme'" in message
    assert "Set app_key=VALUE." in message


def test_empty_required_field_is_missing(acme):
    message = check_error(acme, {"app_key": ""})

    assert "Missing required network-specific field 'app_key'" in message


def test_unknown_field_lists_known(acme):
    message = check_error(acme, {"app_key": "abcd", "appkey": "x"})

    assert "Unknown network-specific field 'appkey' for integration 'acme'" in message
    assert "Known fields: app_key, label, token." in message


def test_pattern_mismatch_shows_value_and_pattern(acme):
    message = check_error(acme, {"app_key": "ABCD"})

    assert "The value 'ABCD' of network-specific field 'app_key' does not match the pattern '[a-z]{4}'" in message


def test_pattern_must_match_whole_value(acme):
    message = check_error(acme, {"app_key": "abcde"})

    assert "'abcde'" in message


def test_secret_mismatch_hides_value(acme):
    message = check_error(acme, {"app_key": "abcd", "token": "hunter2"})

    assert "The secret value of network-specific field 'token'" in message
    assert "'[0-9]{6}'" in message
    assert "hunter2" not in message


def test_every_problem_reported(acme):
    message = check_error(acme, {"token": "hunter2", "extra": "1"})

    assert "Unknown network-specific field 'extra'" in message
    assert "Missing required network-specific field 'app_key'" in message
    assert "The secret value of network-specific field 'token'" in message
    assert "hunter2" not in message


def test_custom_valid_template(custom):
    custom.check_fields({"url": "https://track.example.com/pb?e={event_name}&lvl={event_data.level}"})
    custom.check_fields({"url": "http://track.example.com:8080/pb", "method": "POST"})


def test_custom_requires_url(custom):
    message = check_error(custom, {"method": "GET"})

    assert "Missing required network-specific field 'url'" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://track.example.com/pb?e={evnt_name}", "Unknown macro {evnt_name}. Did you mean {event_name}?"),
        ("https://track.example.com/pb?x={field.token}", "no field 'token'. Declared fields: method, url"),
        ("ftp://track.example.com/pb", "unsupported scheme 'ftp:'"),
        ("https://{network}.example.com/pb", "{network} is part of the URL's host"),
        ("https://track.example.com:{idfa}/pb", "{idfa} is part of the URL's port"),
        ("{click_id}", "starts with the macro {click_id}"),
    ],
)
def test_custom_invalid_template(custom, url, expected):
    message = check_error(custom, {"url": url})

    assert message.startswith("The URL template in network-specific field 'url' is invalid: ")
    assert expected in message


@pytest.mark.parametrize("method", ["PUT", "get", "DELETE"])
def test_custom_bad_method(custom, method):
    message = check_error(custom, {"url": "https://track.example.com/pb", "method": method})

    assert f"The method {method!r} in network-specific field 'method' is not supported. Use GET or POST." in message
