"""Template parsing, validation and rendering for URLs, headers and JSON bodies.

A template is text with ``{name}`` macros. ``{{`` and ``}}`` stand for
literal braces, and every other brace is an error, as in Python's
``str.format``. Each place escapes values its own way: percent-encoding in a
URL, JSON encoding in a body, and a check for line breaks in a header.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Collection, Iterator
from typing import Union

from postbackd.integrations._errors import RenderError, TemplateError
from postbackd.integrations._macros import Macro, MacroValues, classify_macro

Part = Union[str, Macro]

# Placeholders that stand in for macro values when a body is checked as JSON.
# Outside a string, "null" is valid exactly where a string, number or null
# value is, so a body that parses with it parses with every rendered value.
_STRING_PLACEHOLDER = "x"
_VALUE_PLACEHOLDER = "null"

# Header names that the HTTP client sets itself from the rendered request.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})

# An HTTP header name is a token (RFC 9110, section 5.6.2).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")

_URL_START = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")


class Template:
    """A parsed template: literal text and macros in order."""

    __slots__ = ("text", "parts")

    def __init__(self, text: str, parts: list[Part]) -> None:
        self.text = text
        self.parts = parts

    def macros(self) -> Iterator[Macro]:
        return (part for part in self.parts if isinstance(part, Macro))


def parse_template(text: str, field_names: Collection[str]) -> Template:
    """Parse ``text`` and check that every macro is known; raise ``TemplateError``."""
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif char == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif char == "{":
            end = text.find("}", i + 1)
            nested = text.find("{", i + 1, end if end != -1 else len(text))
            if end == -1 or nested != -1:
                snippet = text[i : i + 20]
                raise TemplateError(
                    f"Unclosed '{{' at {snippet!r}. Close the macro with '}}', or write '{{{{' for a literal brace.",
                    needle=snippet,
                )
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(classify_macro(text[i + 1 : end], field_names))
            i = end + 1
        elif char == "}":
            snippet = text[max(0, i - 19) : i + 1]
            raise TemplateError(
                f"Unmatched '}}' at {snippet!r}. Write '}}}}' for a literal brace.",
                needle=snippet,
            )
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append("".join(literal))
    return Template(text, parts)


# ---------------------------------------------------------------- URL


def check_url(template: Template) -> None:
    """Check a URL template: http or https, and scheme, host and port without macros."""
    first = template.parts[0] if template.parts else ""
    if isinstance(first, Macro):
        raise TemplateError(
            f"The URL starts with the macro {first.written}, so its scheme and host would come from a value. "
            "Start the URL with literal text such as https://postbacks.example.net/.",
            needle=first.written,
        )
    if not template.parts:
        raise TemplateError("The URL is empty. Write an http or https URL.")

    start = _URL_START.match(first)
    scheme = start.group(1).lower() if start else ""
    if scheme not in ("http", "https"):
        shown = (start.group(0) if start else first[:20]) or template.text
        raise TemplateError(
            f"The URL has the unsupported scheme {shown!r}. Use http:// or https://.",
            needle=shown,
        )
    if not first.startswith("//", len(scheme) + 1):
        raise TemplateError(
            f"The URL {first[:40]!r} has no host after '{scheme}:'. Write {scheme}://HOST/PATH.",
            needle=first[:20],
        )

    authority_start = len(scheme) + 3
    authority_end = _authority_end(first, authority_start)
    if authority_end is None and len(template.parts) > 1:
        macro = template.parts[1]
        assert isinstance(macro, Macro)
        authority = first[authority_start:]
        place = "port" if ":" in authority.rpartition("]")[2] else "host"
        raise TemplateError(
            f"The macro {macro.written} is part of the URL's {place}. The scheme, host and port must be "
            "literal text so that no value can change where the request goes. End the host "
            "(and port) with '/' or '?' before the first macro.",
            needle=macro.written,
        )
    authority = first[authority_start:authority_end]

    for part in template.parts:
        if isinstance(part, Macro):
            continue
        for char in part:
            if char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F:
                raise TemplateError(
                    f"The URL contains the character {char!r} outside macros. Percent-encode it (a space is %20).",
                    needle=char,
                )
    try:
        split = urllib.parse.urlsplit(f"{scheme}://{authority}/")
        host = split.hostname
        # Reading the port raises ValueError when it is not a number from 0 to 65535.
        _ = split.port
    except ValueError as exc:
        raise TemplateError(f"The URL's host or port {authority!r} is invalid: {exc}.", needle=authority) from exc
    if not host:
        raise TemplateError(f"The URL {template.text[:60]!r} has no host. Write {scheme}://HOST/PATH.", needle=authority)
    if split.username is not None:
        raise TemplateError(
            f"The URL's authority {authority!r} contains user information. Send credentials in a header instead.",
            needle=authority,
        )


def _authority_end(text: str, start: int) -> int | None:
    """Return where the authority ends ('/', '?' or '#'), or None if the text ends first."""
    for index in range(start, len(text)):
        if text[index] in "/?#":
            return index
    return None


def render_url(template: Template, values: MacroValues) -> str:
    """Render a URL, percent-encoding every value so it cannot change the URL's structure."""
    out = []
    for part in template.parts:
        if isinstance(part, Macro):
            out.append(urllib.parse.quote(values.text(part), safe=""))
        else:
            out.append(part)
    return "".join(out)


# ---------------------------------------------------------------- headers


def check_header(name: str, template: Template) -> None:
    """Check a header name and the literal text of its value template."""
    if not _HEADER_NAME.match(name):
        raise TemplateError(
            f"The header name {name!r} is invalid. Use letters, digits and '-', as in X-Api-Key.",
            needle=name,
        )
    if name.lower() in _RESERVED_HEADERS:
        raise TemplateError(
            f"The header {name!r} is set by the HTTP client from the request. Remove it from the template.",
            needle=name,
        )
    for part in template.parts:
        if isinstance(part, str) and any(char in part for char in "\r\n\x00"):
            raise TemplateError(
                f"The value of header {name!r} contains a line break or NUL. Write the value on one line.",
                needle=name,
            )


def render_header(name: str, template: Template, values: MacroValues) -> str:
    """Render a header value; a value containing CR, LF or NUL raises ``RenderError``."""
    out = []
    for part in template.parts:
        if isinstance(part, Macro):
            text = values.text(part)
            if any(char in text for char in "\r\n\x00"):
                raise RenderError(
                    f"The value of {part.written} contains a CR, LF or NUL character and cannot be sent "
                    f"in header {name!r}. Fix the value at its source, or use the macro in the URL or body."
                )
            out.append(text)
        else:
            out.append(part)
    return "".join(out)


# ---------------------------------------------------------------- JSON body


class JsonBody:
    """A body template and, for each macro, whether it sits inside a JSON string."""

    __slots__ = ("template", "in_string")

    def __init__(self, template: Template, in_string: list[bool]) -> None:
        self.template = template
        self.in_string = in_string


def check_json_body(template: Template) -> JsonBody:
    """Check that the body is valid JSON for any macro values; raise ``TemplateError``."""
    in_string: list[bool] = []
    placeholder: list[str] = []
    inside = False
    escaped = False
    for part in template.parts:
        if isinstance(part, Macro):
            in_string.append(inside)
            placeholder.append(_STRING_PLACEHOLDER if inside else _VALUE_PLACEHOLDER)
            continue
        placeholder.append(part)
        for char in part:
            if escaped:
                escaped = False
            elif inside and char == "\\":
                escaped = True
            elif char == '"':
                inside = not inside
    document = "".join(placeholder)
    try:
        json.loads(document)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"The body is not valid JSON once macros are filled in: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno} of the body. Write literal braces as '{{{{' and '}}}}', and put a macro "
            'either inside a JSON string ("{idfa}") or where a JSON value may stand.',
            body_line=exc.lineno,
        ) from exc
    return JsonBody(template, in_string)


def render_body(body: JsonBody, values: MacroValues) -> str:
    """Render a JSON body: values inside strings are escaped, values outside become JSON values."""
    out = []
    macro_index = 0
    for part in body.template.parts:
        if isinstance(part, Macro):
            if body.in_string[macro_index]:
                out.append(json.dumps(values.text(part), ensure_ascii=False)[1:-1])
            else:
                out.append(values.json(part))
            macro_index += 1
        else:
            out.append(part)
    return "".join(out)
