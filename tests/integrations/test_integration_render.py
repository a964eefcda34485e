"""Rendering requests: URL percent-encoding, JSON bodies and header values."""

import json
import urllib.parse

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from postbackd.integrations import RenderError, load_catalog, load_integration

ACME = """\
id = "acme"
name = "Acme Ads"

[[fields]]
name = "app_key"
required = true

[[fields]]
name = "token"
secret = true

[install]
url = "https://acme.example:8443/v1/{event_data.segment}/install?k={field.app_key}&ua={user_agent}&c={country}#{{frag}}"

[install.headers]
User-Agent = "postbackd {user_agent}"
Authorization = "Token {field.token}"

[event]
method = "POST"
url = "https://acme.example/v1/event"
body = '''
{{
  "name": "{event_name}",
  "label": "id={event_id}",
  "revenue": {revenue},
  "currency": {currency},
  "level": {event_data.level},
  "items": {event_data.items},
  "note": "{event_data.note}",
  "missing": {event_data.missing}
}}
'''
"""

FIELDS = {"app_key": "k1", "token": "s3cr3t"}

# Values that would change a URL's structure if they were not encoded.
HOSTILE_VALUES = [
    "a&b=c",
    "x#fragment",
    "two words",
    "../../admin/x",
    "a/b?c=d",
    "Grüße ✓ 日本",
    "%2F%41",
    "@other.example",
    "",
]


@pytest.fixture(scope="module")
def acme():
    return load_integration(ACME, "test", "acme.toml")


def render_install(acme, value):
    return acme.render("install", {"user_agent": value, "country": "DE"}, FIELDS, {"segment": value})


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_url_values_keep_host_and_path(acme, value):
    rendered = render_install(acme, value)

    url = httpx.URL(rendered.url)
    assert url.scheme == "https"
    assert url.host == "acme.example"
    assert url.port == 8443
    assert url.raw_path.decode().split("?")[0] == "/v1/" + urllib.parse.quote(value, safe="") + "/install"
    assert url.fragment == "{frag}"


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_url_query_values_round_trip(acme, value):
    rendered = render_install(acme, value)

    query = urllib.parse.parse_qs(urllib.parse.urlsplit(rendered.url).query, keep_blank_values=True)
    assert query == {"k": ["k1"], "ua": [value], "c": ["DE"]}
    assert urllib.parse.unquote(urllib.parse.urlsplit(rendered.url).path.split("/")[2]) == value


@given(st.text())
def test_url_any_value_round_trips(value):
    integration = load_integration(ACME, "test", "acme.toml")

    rendered = integration.render("install", {"country": value}, FIELDS, {"segment": value})

    split = urllib.parse.urlsplit(rendered.url)
    assert split.netloc == "acme.example:8443"
    assert split.path.count("/") == 3
    assert urllib.parse.unquote(split.path.split("/")[2]) == value
    assert urllib.parse.parse_qs(split.query, keep_blank_values=True)["c"] == [value]


def test_install_renders_method_headers_no_body(acme):
    rendered = render_install(acme, "Mozilla/5.0")

    assert rendered.method == "GET"
    assert rendered.body is None
    assert rendered.headers == [("User-Agent", "postbackd Mozilla/5.0"), ("Authorization", "Token s3cr3t")]


@pytest.mark.parametrize("value", ["line\r\nX-Injected: 1", "line\nbreak", "carriage\rreturn", "nul\x00"])
def test_header_line_break_raises(acme, value):
    with pytest.raises(RenderError) as info:
        acme.render("install", {"user_agent": value}, FIELDS, {"segment": "s"})

    assert "{user_agent}" in str(info.value)
    assert "'User-Agent'" in str(info.value)


def test_header_field_line_break_raises(acme):
    with pytest.raises(RenderError, match="{field.token}"):
        acme.render("install", {}, {"app_key": "k1", "token": "a\nb"}, {"segment": "s"})


@pytest.mark.parametrize(
    "value",
    ['say "hi"', "back\\slash", 'both \\" mixed', "tab\there\nnewline", "Grüße ✓", "\x01control", "</script>"],
)
def test_json_body_string_escaping(acme, value):
    rendered = acme.render("event", {"event_name": value, "event_id": value}, FIELDS, {"note": value})

    body = json.loads(rendered.body)
    assert body["name"] == value
    assert body["label"] == "id=" + value
    assert body["note"] == value


def test_json_body_values_outside_strings(acme):
    macros = {"event_name": "Purchase", "revenue": "4.99", "currency": "USD"}
    event_data = {"level": 7, "items": [{"sku": "a\"b"}], "note": 12}

    rendered = acme.render("event", macros, FIELDS, event_data)

    body = json.loads(rendered.body)
    assert body["revenue"] == 4.99
    assert body["currency"] == "USD"
    assert body["level"] == 7
    assert body["items"] == [{"sku": 'a"b'}]
    assert body["note"] == "12"
    assert body["missing"] is None


def test_json_body_unknown_values_are_empty_or_null(acme):
    rendered = acme.render("event", {}, FIELDS, {})

    body = json.loads(rendered.body)
    assert body["name"] == ""
    assert body["revenue"] is None
    assert body["currency"] is None
    assert body["level"] is None


def test_json_body_sets_content_type(acme):
    rendered = acme.render("event", {"event_name": "x"}, FIELDS, {})

    assert rendered.method == "POST"
    assert rendered.url == "https://acme.example/v1/event"
    assert rendered.headers == [("Content-Type", "application/json")]
    assert rendered.body.startswith(b"{\n")


def test_event_data_text_in_url():
    integration = load_integration(
        'id = "t"\nname = "T"\n[install]\nurl = "https://t.example/i"\n'
        '[event]\nurl = "https://t.example/e?l={event_data.level}&ok={event_data.ok}&r={event_data.ratio}'
        '&n={event_data.none}&o={event_data.obj}&m={event_data.absent}"\n',
        "test",
        "t.toml",
    )

    rendered = integration.render("event", {}, {}, {"level": 7, "ok": True, "ratio": 0.5, "none": None, "obj": {"a": 1}})

    query = urllib.parse.parse_qs(urllib.parse.urlsplit(rendered.url).query, keep_blank_values=True)
    assert query == {"l": ["7"], "ok": ["true"], "r": ["0.5"], "n": [""], "o": ['{"a":1}'], "m": [""]}


def test_literal_braces_render():
    integration = load_integration(
        'id = "t"\nname = "T"\n[install]\nurl = "https://t.example/i?x={{{event_name}}}"\n'
        '[event]\nurl = "https://t.example/e"\n',
        "test",
        "t.toml",
    )

    rendered = integration.render("install", {"event_name": "_install"}, {}, {})

    assert rendered.url == "https://t.example/i?x={_install}"


def test_render_rejects_unknown_kind(acme):
    with pytest.raises(ValueError, match="'reengagement'"):
        acme.render("reengagement", {}, FIELDS, {})


def test_custom_renders_partner_template():
    custom = load_catalog(None).get("custom")
    fields = {"url": "https://track.example.com/pb/{event_name}?c={click_id}&l={event_data.level}", "method": "POST"}

    install = custom.render("install", {"event_name": "_install", "click_id": "a b&c"}, fields, {})
    event = custom.render("event", {"event_name": "Level Up"}, fields, {"level": 3})

    assert install.method == "POST"
    assert install.url == "https://track.example.com/pb/_install?c=a%20b%26c&l="
    assert install.body is None
    assert event.url == "https://track.example.com/pb/Level%20Up?c=&l=3"


def test_custom_defaults_to_get():
    custom = load_catalog(None).get("custom")

    rendered = custom.render("event", {}, {"url": "https://track.example.com/pb"}, {})

    assert rendered.method == "GET"


def test_custom_invalid_template_raises_render_error():
    custom = load_catalog(None).get("custom")

    with pytest.raises(RenderError, match="Unknown macro {nope}"):
        custom.render("event", {}, {"url": "https://track.example.com/pb?x={nope}"}, {})


def test_builtin_examples_render():
    catalog = load_catalog(None)
    macros = {"event_name": "Purchase", "partner_event_name": "purchase", "revenue": "4.99", "currency": "USD"}

    examplenet = catalog.get("examplenet").render("event", macros, {"app_key": "0" * 32}, {})
    jsonads = catalog.get("jsonads").render("event", macros, {"advertiser_id": "42", "api_key": "k" * 24}, {})

    assert httpx.URL(examplenet.url).host == "postback.examplenet.example"
    assert "partner_event=purchase" in examplenet.url
    assert jsonads.url == "https://api.jsonads.example/v2/advertisers/42/events"
    assert ("X-Api-Key", "k" * 24) in jsonads.headers
    assert json.loads(jsonads.body)["event"] == "purchase"
    assert json.loads(jsonads.body)["revenue"] == 4.99


def test_unencodable_value_raises_render_error(acme):
    with pytest.raises(RenderError, match="cannot be encoded as UTF-8"):
        acme.render("install", {"country": "\ud800"}, FIELDS, {"segment": "s"})
