"""An integration: one network's network-specific fields and request templates."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, TypeVar

import msgspec

from postbackd.integrations._errors import IntegrationError, RenderError, TemplateError
from postbackd.integrations._macros import MacroValues
from postbackd.integrations._template import (
    JsonBody,
    Template,
    check_header,
    check_json_body,
    check_url,
    parse_template,
    render_body,
    render_header,
    render_url,
)

T = TypeVar("T")

# The integration whose partners supply their own URL template and method.
CUSTOM_ID = "custom"
CUSTOM_URL_FIELD = "url"
CUSTOM_METHOD_FIELD = "method"

# Parsed partner templates of the custom integration kept for reuse, by
# template text: one entry per distinct partner URL template.
_PARTNER_TEMPLATE_CACHE_SIZE = 1024


class Field(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A network-specific field: a value each partner of the network sets.

    ``pattern`` is a regular expression that the whole value must match.
    Values of ``secret`` fields are masked in logs and records.
    """

    name: str
    required: bool = False
    secret: bool = False
    description: str = ""
    pattern: str | None = None


class RequestTemplate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The request sent for one kind of postback, as written in the integration file."""

    method: Literal["GET", "POST"] = "GET"
    url: str
    headers: dict[str, str] = {}
    body: str | None = None


class RenderedRequest(msgspec.Struct, frozen=True):
    """A request ready to send: every macro replaced by its encoded value."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes | None


class _CompiledRequest:
    __slots__ = ("method", "url", "headers", "body")

    def __init__(self, template: RequestTemplate, field_names: Collection[str]) -> None:
        self.method = template.method
        self.url: Template = _at(("url",), _parse_url, template.url, field_names)
        self.headers: list[tuple[str, Template]] = [
            (name, _at(("headers", name), _parse_header, name, value, field_names))
            for name, value in template.headers.items()
        ]
        self.body: JsonBody | None = None
        if template.body is not None:
            if template.method != "POST":
                problem = f"A body is set but the method is {template.method}. Set method = \"POST\", or remove the body."
                raise _located(TemplateError(problem), ("body",))
            self.body = _at(("body",), _parse_body, template.body, field_names)


def _parse_url(text: str, field_names: Collection[str]) -> Template:
    template = parse_template(text, field_names)
    check_url(template)
    return template


def _parse_header(name: str, text: str, field_names: Collection[str]) -> Template:
    template = parse_template(text, field_names)
    check_header(name, template)
    return template


def _parse_body(text: str, field_names: Collection[str]) -> JsonBody:
    return check_json_body(parse_template(text, field_names))


def _at(where: tuple[str, ...], parse: Callable[..., T], *args: Any) -> T:
    """Call ``parse`` and add ``where`` to the location of a ``TemplateError`` it raises."""
    try:
        return parse(*args)
    except TemplateError as exc:
        raise _located(exc, where) from None


def _located(exc: TemplateError, where: tuple[str, ...]) -> TemplateError:
    exc.where = where + exc.where
    return exc


class Integration:
    """One network's integration: its network-specific fields and request templates.

    ``source`` is the file it was loaded from, or ``"built-in"``. When
    ``partner_template`` is true (the ``custom`` integration), each partner
    supplies the URL template and method in its ``url`` and ``method``
    fields, and ``install`` and ``event`` only show that template's place.
    """

    def __init__(
        self,
        *,
        id: str,
        name: str,
        concurrency: int,
        event_names: Literal["required", "optional"],
        fields: list[Field],
        install: RequestTemplate,
        event: RequestTemplate,
        source: str,
        partner_template: bool = False,
    ) -> None:
        self.id = id
        self.name = name
        self.concurrency = concurrency
        self.event_names = event_names
        self.fields = fields
        self.install = install
        self.event = event
        self.source = source
        self.partner_template = partner_template
        self._field_names = frozenset(field.name for field in fields)
        self._patterns = {field.name: re.compile(field.pattern) for field in fields if field.pattern is not None}
        self._requests: dict[str, _CompiledRequest] = {}
        if not partner_template:
            for kind, template in (("install", install), ("event", event)):
                try:
                    self._requests[kind] = _CompiledRequest(template, self._field_names)
                except TemplateError as exc:
                    raise _located(exc, (kind,)) from None

    def __repr__(self) -> str:
        return f"<Integration {self.id!r} from {self.source}>"

    def secret_fields(self) -> frozenset[str]:
        """Return the names of the secret network-specific fields."""
        return frozenset(field.name for field in self.fields if field.secret)

    def secret_values(self, fields: Mapping[str, str]) -> list[str]:
        """Return a partner's values of secret fields, for ``mask_secrets``."""
        return [fields[name] for name in sorted(self.secret_fields()) if fields.get(name)]

    def check_fields(self, fields: Mapping[str, str]) -> None:
        """Check a partner's network-specific fields; raise ``IntegrationError`` listing every problem.

        Secret values never appear in the message.
        """
        problems = []
        for name in sorted(set(fields) - self._field_names):
            known = ", ".join(sorted(self._field_names)) or "none"
            problems.append(
                f"Unknown network-specific field {name!r} for integration {self.id!r}. Known fields: {known}."
            )
        for field in self.fields:
            value = fields.get(field.name, "")
            if field.required and not value:
                about = f" ({field.description})" if field.description else ""
                problems.append(
                    f"Missing required network-specific field {field.name!r}{about} for integration "
                    f"{self.id!r}. Set {field.name}=VALUE."
                )
            elif value and field.name in self._patterns and not self._patterns[field.name].fullmatch(value):
                shown = "The secret value" if field.secret else f"The value {value!r}"
                problems.append(
                    f"{shown} of network-specific field {field.name!r} does not match the pattern "
                    f"{field.pattern!r} of integration {self.id!r}. Enter the value as the network issued it."
                )
        if self.partner_template and not problems:
            problems.extend(self._partner_template_problems(fields))
        if problems:
            raise IntegrationError(" ".join(problems))

    def _partner_template_problems(self, fields: Mapping[str, str]) -> list[str]:
        problems = []
        method = fields.get(CUSTOM_METHOD_FIELD) or "GET"
        if method not in ("GET", "POST"):
            problems.append(
                f"The method {method!r} in network-specific field {CUSTOM_METHOD_FIELD!r} is not supported. "
                "Use GET or POST."
            )
        try:
            _compile_partner_request(fields.get(CUSTOM_URL_FIELD, ""), "GET", self._field_names)
        except TemplateError as exc:
            problems.append(
                f"The URL template in network-specific field {CUSTOM_URL_FIELD!r} is invalid: {exc.problem}"
            )
        return problems

    def render(
        self,
        kind: Literal["install", "event"],
        macros: Mapping[str, str],
        fields: Mapping[str, str],
        event_data: Mapping[str, Any],
    ) -> RenderedRequest:
        """Render the install or event request of one postback.

        Raises ``RenderError`` when a value cannot be placed, such as a line
        break in a header value, or when a partner's own template is invalid.
        """
        if kind not in ("install", "event"):
            raise ValueError(f"kind must be 'install' or 'event', not {kind!r}")
        request = self._request_for(kind, fields)
        values = MacroValues(macros, fields, event_data)

        try:
            url = render_url(request.url, values)
            headers = [(name, render_header(name, template, values)) for name, template in request.headers]
            body = None
            if request.body is not None:
                body = render_body(request.body, values).encode()
                if not any(name.lower() == "content-type" for name, _ in headers):
                    headers.append(("Content-Type", "application/json"))
        except UnicodeEncodeError as exc:
            # Decoded JSON and msgpack never hold lone surrogates, but a value built in code can.
            raise RenderError(
                f"A macro value contains text that cannot be encoded as UTF-8: {exc.reason} "
                f"at {exc.object[exc.start : exc.end]!r}."
            ) from exc
        return RenderedRequest(method=request.method, url=url, headers=headers, body=body)

    def _request_for(self, kind: str, fields: Mapping[str, str]) -> _CompiledRequest:
        if not self.partner_template:
            return self._requests[kind]
        method = fields.get(CUSTOM_METHOD_FIELD) or "GET"
        try:
            return _compile_partner_request(fields.get(CUSTOM_URL_FIELD, ""), method, self._field_names)
        except TemplateError as exc:
            raise RenderError(
                f"The partner's URL template in field {CUSTOM_URL_FIELD!r} is invalid: {exc.problem}"
            ) from None


@functools.lru_cache(maxsize=_PARTNER_TEMPLATE_CACHE_SIZE)
def _compile_partner_request(url: str, method: str, field_names: frozenset[str]) -> _CompiledRequest:
    if method not in ("GET", "POST"):
        raise TemplateError(f"The method {method!r} is not supported. Use GET or POST.")
    return _CompiledRequest(RequestTemplate(method=method, url=url), field_names)  # type: ignore[arg-type]
