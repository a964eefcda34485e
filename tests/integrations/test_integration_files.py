"""Loading integration files: every validation error names the file, the line and the value."""

from pathlib import Path

import pytest

from postbackd.integrations import IntegrationError, load_integration_file


def line_of(text: str, needle: str) -> int:
    """Return the 1-based line of the first occurrence of ``needle`` in ``text``."""
    return text.count("\n", 0, text.index(needle)) + 1


HEAD = """\
id = "acme"
name = "Acme Ads"

[[fields]]
name = "app_key"
required = true
pattern = "[a-z]{4}"

[[fields]]
name = "token"
secret = true
"""

GOOD_EVENT = """
[event]
method = "GET"
url = "https://acme.example/event?e={event_name}"
"""


def install_url(url: str) -> str:
    return HEAD + f'\n[install]\nmethod = "GET"\nurl = "{url}"\n' + GOOD_EVENT


def load_error(write_file, text: str) -> tuple[Path, str]:
    path = write_file(text)
    with pytest.raises(IntegrationError) as info:
        load_integration_file(path)
    return path, str(info.value)


def test_valid_file_loads(load_text):
    integration = load_text(install_url("https://acme.example/i?k={field.app_key}&t={field.token}"))

    assert integration.id == "acme"
    assert integration.name == "Acme Ads"
    assert integration.concurrency == 8
    assert integration.event_names == "optional"
    assert [field.name for field in integration.fields] == ["app_key", "token"]
    assert integration.secret_fields() == frozenset({"token"})
    assert integration.install.url == "https://acme.example/i?k={field.app_key}&t={field.token}"
    assert integration.event.method == "GET"


@pytest.mark.parametrize(
    ("url", "needle", "expected"),
    [
        ("ftp://acme.example/i", "ftp://", "unsupported scheme 'ftp:'"),
        ("acme.example/i?x={idfa}", "acme.example", "unsupported scheme"),
        ("{network}://acme.example/i", "{network}", "starts with the macro {network}"),
        ("https://{network}.acme.example/i", "{network}", "{network} is part of the URL's host"),
        ("https://acme.example{event_name}", "{event_name}", "{event_name} is part of the URL's host"),
        ("https://acme.example:{field.app_key}/i", "{field.app_key}", "{field.app_key} is part of the URL's port"),
        ("https://acme.example:99999/i", "acme.example", "host or port 'acme.example:99999' is invalid"),
        ("https://acme.example/i?x={clickid}", "{clickid}", "Unknown macro {clickid}. Did you mean {click_id}?"),
        ("https://acme.example/i?x={partner.id}", "{partner.id}", "{field.NAME}"),
        ("https://acme.example/i?x={field.nope}", "{field.nope}", "no field 'nope'. Declared fields: app_key, token"),
        ("https://acme.example/i?x={idfa", "{idfa", "Unclosed '{'"),
        ("https://acme.example/i?x=idfa}", "idfa}", "Unmatched '}'"),
        ("https://acme.example/i?x={event_data.}", "{event_data.}", "names no key"),
    ],
)
def test_install_url_errors(write_file, url, needle, expected):
    text = install_url(url)

    path, message = load_error(write_file, text)

    assert message.startswith(f"{path}, line {line_of(text, 'url = ')} (install.url): ")
    assert expected in message


def test_url_space_rejected(write_file):
    path, message = load_error(write_file, install_url("https://acme.example/a b?x={idfa}"))

    assert str(path) in message
    assert "the character ' ' outside macros" in message
    assert "%20" in message


def test_event_url_error_names_event_line(write_file):
    text = HEAD + '\n[install]\nurl = "https://acme.example/i"\n\n[event]\nurl = "https://{country}.acme.example/e"\n'

    _, message = load_error(write_file, text)

    assert f"line {line_of(text, '{country}')} (event.url)" in message
    assert "{country}" in message


def test_macro_line_inside_multiline_body(write_file):
    text = (
        HEAD
        + "\n[install]\nurl = \"https://acme.example/i\"\n"
        + "\n[event]\nmethod = \"POST\"\nurl = \"https://acme.example/e\"\nbody = '''\n"
        + '{{\n  "event": "{event_name}",\n  "click": "{clikc_id}"\n}}\n'
        + "'''\n"
    )

    _, message = load_error(write_file, text)

    assert f"line {line_of(text, '{clikc_id}')} (event.body)" in message
    assert "Unknown macro {clikc_id}. Did you mean {click_id}?" in message


def test_invalid_json_body_names_body_line(write_file):
    body_lines = ['{{', '  "event": "{event_name}"', '  "revenue": {revenue}', '}}']
    text = (
        HEAD
        + "\n[install]\nurl = \"https://acme.example/i\"\n"
        + "\n[event]\nmethod = \"POST\"\nurl = \"https://acme.example/e\"\nbody = '''\n"
        + "\n".join(body_lines)
        + "\n'''\n"
    )

    _, message = load_error(write_file, text)

    revenue_line = line_of(text, body_lines[2])
    assert f"line {revenue_line} (event.body)" in message
    assert "not valid JSON once macros are filled in: Expecting ',' delimiter" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"event": "{event_name}"}', "Unclosed '{'"),
        ('{{"event": {event_name}{revenue}}}', "not valid JSON"),
        ('{{{event_name}: 1}}', "not valid JSON"),
        ('{{"revenue": 1{revenue}}}', "not valid JSON"),
    ],
)
def test_body_template_errors(write_file, body, expected):
    text = (
        HEAD
        + "\n[install]\nurl = \"https://acme.example/i\"\n"
        + f"\n[event]\nmethod = \"POST\"\nurl = \"https://acme.example/e\"\nbody = '{body}'\n"
    )

    path, message = load_error(write_file, text)

    assert message.startswith(f"{path}, line {line_of(text, 'body = ')} (event.body): ")
    assert expected in message


def test_body_with_get_rejected(write_file):
    text = HEAD + GOOD_EVENT + '\n[install]\nurl = "https://acme.example/i"\nbody = \'{{}}\'\n'

    _, message = load_error(write_file, text)

    assert f"line {line_of(text, 'body = ')} (install.body)" in message
    assert 'the method is GET. Set method = "POST"' in message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"X Api" = "{field.token}"', "header name 'X Api' is invalid"),
        ('Host = "other.example"', "header 'Host' is set by the HTTP client"),
        ('X-Token = "{field.secret_key}"', "no field 'secret_key'"),
        ('X-Token = "a\\r\\nX-Injected: 1"', "contains a line break"),
    ],
)
def test_header_template_errors(write_file, header, expected):
    text = HEAD + GOOD_EVENT + f'\n[install]\nurl = "https://acme.example/i"\n\n[install.headers]\n{header}\n'

    _, message = load_error(write_file, text)

    assert f"line {line_of(text, header)} (install.headers." in message
    assert expected in message


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        ('concurrency = "many"', "concurrency", "Expected `int`, got `str` (at concurrency)"),
        ("concurrency = 0", "concurrency", "Expected `int` >= 1 (at concurrency)"),
        ('event_names = "sometimes"', "event_names", "Invalid enum value 'sometimes' (at event_names)"),
        ('colour = "red"', "colour", "unknown field `colour`"),
    ],
)
def test_top_level_value_errors(write_file, change, key, expected):
    text = HEAD.replace('name = "Acme Ads"\n', f'name = "Acme Ads"\n{change}\n') + install_url("https://a.example/")[len(HEAD):]

    _, message = load_error(write_file, text)

    assert f"line {line_of(text, change)}:" in message
    assert expected in message


def test_bad_method_names_line(write_file):
    text = HEAD + GOOD_EVENT + '\n[install]\nmethod = "PUT"\nurl = "https://acme.example/i"\n'

    _, message = load_error(write_file, text)

    method_line = line_of(text, 'method = "PUT"')
    assert f"line {method_line}:" in message
    assert "Invalid enum value 'PUT' (at install.method)" in message


def test_missing_event_table(write_file):
    text = HEAD + '\n[install]\nurl = "https://acme.example/i"\n'

    path, message = load_error(write_file, text)

    assert str(path) in message
    assert "The [event] table is missing" in message


def test_invalid_id(write_file):
    text = install_url("https://acme.example/i").replace('id = "acme"', 'id = "Acme Ads"')

    _, message = load_error(write_file, text)

    assert "line 1:" in message
    assert "The id 'Acme Ads' is invalid" in message


def test_bad_pattern_names_second_field(write_file):
    text = install_url("https://acme.example/i").replace('secret = true', 'secret = true\npattern = "[a-z"')

    _, message = load_error(write_file, text)

    pattern_line = line_of(text, 'pattern = "[a-z"')
    assert f"line {pattern_line}:" in message
    assert "pattern '[a-z' of field 'token' is not a valid regular expression" in message


def test_duplicate_field_name(write_file):
    text = install_url("https://acme.example/i").replace('name = "token"', 'name = "app_key"')

    _, message = load_error(write_file, text)

    assert f"line {line_of(text, 'secret = true') - 1}:" in message
    assert "The field 'app_key' is declared twice" in message


def test_invalid_toml_syntax(write_file):
    text = 'id = "acme"\nname = "Acme\n'

    path, message = load_error(write_file, text)

    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 2" in message


def test_file_not_utf8(write_file):
    path = write_file("")
    path.write_bytes(b'id = "acme\xff"\n')

    with pytest.raises(IntegrationError, match="not valid UTF-8"):
        load_integration_file(path)


def test_unknown_key_in_template_names_its_line(write_file):
    text = HEAD + GOOD_EVENT + '\n[install]\nurl = "https://acme.example/i"\nheader = "x"\n'

    _, message = load_error(write_file, text)

    assert f"line {line_of(text, 'header = ')}:" in message
    assert "unknown field `header` (at install)" in message


def test_inline_headers_error_names_headers_line(write_file):
    text = HEAD + GOOD_EVENT + '\n[install]\nurl = "https://acme.example/i"\nheaders = { X-Key = "{field.tokn}" }\n'

    _, message = load_error(write_file, text)

    assert f"line {line_of(text, 'headers = ')} (install.headers.X-Key)" in message
    assert "no field 'tokn'" in message
