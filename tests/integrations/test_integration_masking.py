"""Masking secret network-specific field values."""

import json
import urllib.parse

from postbackd.integrations import load_catalog, mask_secrets


def test_raw_secret_masked():
    assert mask_secrets("key=abc123&x=1", ["abc123"]) == "key=***&x=1"


def test_percent_encoded_secret_masked():
    secret = "p@ss word/&="
    url = "https://a.example/?k=" + urllib.parse.quote(secret, safe="") + "&q=" + urllib.parse.quote_plus(secret)

    assert mask_secrets(url, [secret]) == "https://a.example/?k=***&q=***"


def test_json_escaped_secret_masked():
    secret = 'quote" and \\ back'
    body = json.dumps({"key": secret})

    assert mask_secrets(body, [secret]) == '{"key": "***"}'


def test_empty_secret_ignored():
    assert mask_secrets("nothing secret", ["", "zzz"]) == "nothing secret"


def test_longer_secret_masked_whole():
    assert mask_secrets("token=abcdef", ["abc", "abcdef"]) == "token=***"


def test_every_occurrence_masked():
    assert mask_secrets("s1 and s1 again, s2", ["s1", "s2"]) == "*** and *** again, ***"


def test_rendered_request_masked_with_secret_values():
    jsonads = load_catalog(None).get("jsonads")
    fields = {"advertiser_id": "42", "api_key": "K" * 30}

    rendered = jsonads.render("install", {}, fields, {})
    secrets = jsonads.secret_values(fields)

    assert secrets == ["K" * 30]
    assert mask_secrets(str(rendered.headers), secrets) == "[('X-Api-Key', '***'), ('Content-Type', 'application/json')]"
    assert mask_secrets(rendered.url, secrets) == rendered.url
