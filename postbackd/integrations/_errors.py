"""Errors raised by the integration catalog.

Exception tree::

    ValueError
    ├── IntegrationError   a broken integration file, or a partner's invalid
    │                      network-specific fields
    ├── RenderError        a request cannot be rendered from an event's values
    └── TemplateError      internal: one template problem, before the loader or
                           the field check adds the file, line or field name
"""

from __future__ import annotations


class IntegrationError(ValueError):
    """An integration file is invalid, or a partner's network-specific fields are."""


class RenderError(ValueError):
    """A postback request cannot be rendered from the event's values."""


class TemplateError(ValueError):
    """One problem in one template.

    ``needle`` is text of the template that shows where the problem is (a
    macro as written, with braces), ``body_line`` the line inside a body
    template, and ``where`` the key path of the template in the integration
    file, such as ``("event", "headers", "X-Api-Key")``. The loader uses them
    to name the line of the file.
    """

    def __init__(self, problem: str, *, needle: str | None = None, body_line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.needle = needle
        self.body_line = body_line
        self.where: tuple[str, ...] = ()
