"""The catalog: built-in integrations, operator files and overrides."""

from pathlib import Path

import pytest

from postbackd.integrations import BUILT_IN, IntegrationError, load_catalog, load_integration

OPERATOR_EXAMPLENET = """\
id = "examplenet"
name = "ExampleNet, operator copy"
concurrency = 2

[[fields]]
name = "account"
required = true

[install]
url = "https://pb.operator.example/install?account={field.account}"

[event]
url = "https://pb.operator.example/event?account={field.account}&e={event_name}"
"""


def write_operator_file(data_dir: Path, name: str, text: str) -> Path:
    path = data_dir / "integrations" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_builtins_load():
    catalog = load_catalog(None)

    assert catalog.ids() == ["custom", "examplenet", "jsonads"]
    assert [integration.id for integration in catalog] == catalog.ids()
    assert all(integration.source == BUILT_IN for integration in catalog)


def test_builtin_examples_describe_their_networks():
    catalog = load_catalog(None)

    examplenet = catalog.get("examplenet")
    assert examplenet.install.method == "GET"
    assert {field.name for field in examplenet.fields if field.required} == {"app_key"}
    assert next(field for field in examplenet.fields if field.name == "app_key").pattern == "[0-9a-f]{32}"

    jsonads = catalog.get("jsonads")
    assert jsonads.event_names == "required"
    assert jsonads.event.method == "POST"
    assert jsonads.secret_fields() == frozenset({"api_key"})
    assert jsonads.event.headers == {"X-Api-Key": "{field.api_key}"}

    custom = catalog.get("custom")
    assert custom.partner_template
    assert {field.name for field in custom.fields} == {"url", "method"}


def test_missing_data_dir_gives_builtins(tmp_path):
    catalog = load_catalog(tmp_path / "absent")

    assert catalog.ids() == ["custom", "examplenet", "jsonads"]


def test_unknown_integration_lists_known():
    catalog = load_catalog(None)

    with pytest.raises(IntegrationError) as info:
        catalog.get("acme")

    assert str(info.value) == "Unknown integration 'acme'. Known: custom, examplenet, jsonads."


def test_operator_file_added(tmp_path):
    text = OPERATOR_EXAMPLENET.replace('id = "examplenet"', 'id = "acme"')
    path = write_operator_file(tmp_path, "acme.toml", text)

    catalog = load_catalog(tmp_path)

    assert catalog.ids() == ["acme", "custom", "examplenet", "jsonads"]
    assert catalog.get("acme").source == str(path)
    assert "acme" in catalog


def test_operator_file_overrides_builtin(tmp_path):
    path = write_operator_file(tmp_path, "my-examplenet.toml", OPERATOR_EXAMPLENET)

    catalog = load_catalog(tmp_path)

    examplenet = catalog.get("examplenet")
    assert examplenet.source == str(path)
    assert examplenet.name == "ExampleNet, operator copy"
    assert examplenet.concurrency == 2
    assert [field.name for field in examplenet.fields] == ["account"]
    assert catalog.get("jsonads").source == BUILT_IN
    assert len(catalog) == 3


def test_operator_files_with_same_id(tmp_path):
    first = write_operator_file(tmp_path, "a.toml", OPERATOR_EXAMPLENET)
    second = write_operator_file(tmp_path, "b.toml", OPERATOR_EXAMPLENET)

    with pytest.raises(IntegrationError) as info:
        load_catalog(tmp_path)

    message = str(info.value)
    assert str(first) in message
    assert str(second) in message
    assert "'examplenet'" in message


def test_broken_operator_file_fails_catalog(tmp_path):
    text = OPERATOR_EXAMPLENET.replace("{field.account}&e", "{field.acount}&e")
    path = write_operator_file(tmp_path, "examplenet.toml", text)

    with pytest.raises(IntegrationError) as info:
        load_catalog(tmp_path)

    assert str(info.value).startswith(f"{path}, line 13 (event.url): ")
    assert "{field.acount}" in str(info.value)


def test_operator_custom_with_templates_rejected(tmp_path):
    builtin = Path(__file__).parents[2] / "postbackd" / "integrations" / "builtin" / "custom.toml"
    text = builtin.read_text() + '\n[install]\nurl = "https://a.example/"\n'
    write_operator_file(tmp_path, "custom.toml", text)

    with pytest.raises(IntegrationError, match=r"Remove the \[install\] table"):
        load_catalog(tmp_path)


def test_operator_custom_without_url_field_rejected(tmp_path):
    write_operator_file(tmp_path, "custom.toml", 'id = "custom"\nname = "Mine"\n\n[[fields]]\nname = "method"\n')

    with pytest.raises(IntegrationError, match="must declare the field 'url' with required = true"):
        load_catalog(tmp_path)


def test_docs_example_loads_and_renders():
    docs = Path(__file__).parents[2] / "docs" / "integrations.md"
    example = docs.read_text().split("```toml\n", 1)[1].split("```", 1)[0]

    integration = load_integration(example, "docs", "docs/integrations.md")
    rendered = integration.render("event", {"revenue": "4.99"}, {"advertiser_id": "1", "api_key": "k"}, {"level": 3})

    assert integration.id == "acme"
    assert rendered.url == "https://pb.acme.example/advertisers/1/events"
    assert b'"level": 3' in rendered.body
