"""Loading integration files into a catalog.

The catalog contains the built-in integrations shipped in ``builtin/`` and the
operator's files in ``DATA_DIR/integrations/*.toml``. An operator file whose
``id`` is the id of a built-in integration replaces that built-in.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from postbackd.integrations._errors import IntegrationError, TemplateError
from postbackd.integrations._integration import (
    CUSTOM_ID,
    CUSTOM_METHOD_FIELD,
    CUSTOM_URL_FIELD,
    Field,
    Integration,
    RequestTemplate,
)
from postbackd.integrations._source import SourceMap

log = logging.getLogger("postbackd.integrations")

BUILT_IN = "built-in"

# Builds the error for a key path of the file, with an optional needle that
# shows where in the value the problem is.
Fail = Callable[..., IntegrationError]

_INTEGRATION_ID = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}\Z")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VALIDATION_PATH = re.compile(r" - at `\$([^`]*)`\Z")
_PATH_STEP = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]")
_UNKNOWN_KEY = re.compile(r"unknown field `([^`]+)`")

# Templates that the custom integration reports for display. Each partner's
# own url and method fields take their place when a request is rendered.
_CUSTOM_PLACEHOLDER = RequestTemplate(url="{field.url}")


class _IntegrationFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    name: str
    concurrency: Annotated[int, msgspec.Meta(ge=1)] = 8
    event_names: Literal["required", "optional"] = "optional"
    fields: list[Field] = []
    install: RequestTemplate | None = None
    event: RequestTemplate | None = None


class Catalog:
    """The integrations available to partners, by id."""

    def __init__(self, integrations: Iterable[Integration]) -> None:
        self._by_id = {integration.id: integration for integration in sorted(integrations, key=lambda i: i.id)}

    def get(self, integration_id: str) -> Integration:
        """Return the integration with this id; raise ``IntegrationError`` if there is none."""
        try:
            return self._by_id[integration_id]
        except KeyError:
            known = ", ".join(self._by_id) or "none"
            raise IntegrationError(f"Unknown integration {integration_id!r}. Known: {known}.") from None

    def ids(self) -> list[str]:
        """Return the integration ids, sorted."""
        return list(self._by_id)

    def __iter__(self) -> Iterator[Integration]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, integration_id: object) -> bool:
        return integration_id in self._by_id


def load_catalog(data_dir: Path | None) -> Catalog:
    """Load the built-in integrations and the files in ``data_dir/integrations``.

    Raises ``IntegrationError`` naming the file and line of the first broken
    file, or the two files when operator files repeat an id.
    """
    by_id: dict[str, Integration] = {}
    builtin_dir = importlib.resources.files(__package__).joinpath("builtin")
    for entry in sorted(builtin_dir.iterdir(), key=lambda entry: entry.name):
        if entry.name.endswith(".toml"):
            integration = load_integration(entry.read_text(encoding="utf-8"), BUILT_IN, f"built-in {entry.name}")
            by_id[integration.id] = integration

    if data_dir is not None:
        operator_sources: dict[str, str] = {}
        for path in sorted((data_dir / "integrations").glob("*.toml")):
            integration = load_integration_file(path)
            if integration.id in operator_sources:
                raise IntegrationError(
                    f"{path}: the integration id {integration.id!r} is also used by "
                    f"{operator_sources[integration.id]}. Give each integration file its own id."
                )
            operator_sources[integration.id] = str(path)
            if integration.id in by_id:
                log.info("integration %s from %s replaces the built-in one", integration.id, path)
            by_id[integration.id] = integration
    return Catalog(by_id.values())


def load_integration_file(path: Path) -> Integration:
    """Load one operator integration file; raise ``IntegrationError`` naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise IntegrationError(f"{path}: the file is not valid UTF-8 ({exc}). Save it as UTF-8.") from exc
    except OSError as exc:
        raise IntegrationError(f"{path}: cannot read the integration file: {exc.strerror}.") from exc
    return load_integration(text, str(path), str(path))


def load_integration(text: str, source: str, label: str) -> Integration:
    """Parse and check the text of one integration file.

    ``source`` becomes ``Integration.source`` and ``label`` names the file in
    error messages.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IntegrationError(f"{label}: invalid TOML: {exc}. Fix the syntax at that position.") from exc
    source_map = SourceMap(text)

    def fail(path: tuple[str | int, ...], problem: str, needle: str | None = None) -> IntegrationError:
        return IntegrationError(f"{label}, line {source_map.line_of(path, needle)}: {problem}")

    try:
        spec = msgspec.convert(data, _IntegrationFile)
    except msgspec.ValidationError as exc:
        message, path = _split_validation_error(str(exc))
        raise fail(path, f"{message}. Check the key names and value types against docs/integrations.md.") from None

    if not _INTEGRATION_ID.match(spec.id):
        raise fail(
            ("id",),
            f"The id {spec.id!r} is invalid. Use 1 to 64 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit.",
        )
    if not spec.name.strip():
        raise fail(("name",), "The name is empty. Give the network's display name.")
    _check_fields(spec.fields, fail)

    if spec.id == CUSTOM_ID:
        _check_custom(spec, fail)
        install = event = _CUSTOM_PLACEHOLDER
    else:
        for kind in ("install", "event"):
            if getattr(spec, kind) is None:
                raise fail((), f"The [{kind}] table is missing. Add it with at least method and url.")
        assert spec.install is not None and spec.event is not None
        install, event = spec.install, spec.event

    try:
        return Integration(
            id=spec.id,
            name=spec.name,
            concurrency=spec.concurrency,
            event_names=spec.event_names,
            fields=spec.fields,
            install=install,
            event=event,
            source=source,
            partner_template=spec.id == CUSTOM_ID,
        )
    except TemplateError as exc:
        raise _template_failure(exc, label, source_map) from None


def _check_fields(fields: list[Field], fail: Fail) -> None:
    seen: set[str] = set()
    for index, field in enumerate(fields):
        if not _FIELD_NAME.match(field.name):
            raise fail(
                ("fields", index, "name"),
                f"The field name {field.name!r} is invalid. Use letters, digits and '_', starting with a letter.",
            )
        if field.name in seen:
            raise fail(("fields", index, "name"), f"The field {field.name!r} is declared twice. Remove one.")
        seen.add(field.name)
        if field.pattern is not None:
            try:
                re.compile(field.pattern)
            except re.error as exc:
                raise fail(
                    ("fields", index, "pattern"),
                    f"The pattern {field.pattern!r} of field {field.name!r} is not a valid regular expression: "
                    f"{exc}. Fix the pattern (Python re syntax).",
                ) from None


def _check_custom(spec: _IntegrationFile, fail: Fail) -> None:
    for kind in ("install", "event"):
        if getattr(spec, kind) is not None:
            raise fail(
                (kind,),
                f"The custom integration takes its template from each partner's {CUSTOM_URL_FIELD!r} and "
                f"{CUSTOM_METHOD_FIELD!r} fields. Remove the [{kind}] table.",
            )
    declared = {field.name: field for field in spec.fields}
    url = declared.get(CUSTOM_URL_FIELD)
    if url is None or not url.required or url.secret:
        raise fail(
            ("fields",),
            f"The custom integration must declare the field {CUSTOM_URL_FIELD!r} with required = true "
            "and secret = false. Add or fix that [[fields]] entry.",
        )
    if CUSTOM_METHOD_FIELD not in declared:
        raise fail(
            ("fields",),
            f"The custom integration must declare the field {CUSTOM_METHOD_FIELD!r}. Add a [[fields]] entry for it.",
        )


def _template_failure(exc: TemplateError, label: str, source_map: SourceMap) -> IntegrationError:
    key = ".".join(exc.where)
    line = source_map.line_of(exc.where, exc.needle)
    if exc.body_line is not None:
        first = source_map.value_line(exc.where)
        if first is not None:
            line = first + exc.body_line - 1
    return IntegrationError(f"{label}, line {line} ({key}): {exc.problem}")


def _split_validation_error(message: str) -> tuple[str, tuple[str | int, ...]]:
    """Split a msgspec message such as "Expected `int`, got `str` - at `$.concurrency`"."""
    match = _VALIDATION_PATH.search(message)
    path: list[str | int] = []
    if match is not None:
        for step in _PATH_STEP.finditer(match.group(1)):
            path.append(step.group(1) if step.group(1) is not None else int(step.group(2)))
        where = match.group(1).lstrip(".")
        message = message[: match.start()] + (f" (at {where})" if where else "")
    unknown = _UNKNOWN_KEY.search(message)
    if unknown is not None:
        path.append(unknown.group(1))
    return message, tuple(path)
