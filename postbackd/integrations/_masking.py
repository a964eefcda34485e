"""Masking of secret network-specific field values in text meant for logs and records."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable

MASK = "***"


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """Replace every non-empty secret in ``text`` with ``***``.

    Each secret is replaced as written and in the forms it takes in a
    rendered request: percent-encoded (as in a URL, with ``%20`` or ``+`` for
    a space) and JSON-escaped (as in a body). Longer forms are replaced first,
    so a secret that contains another secret is masked whole.
    """
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        forms.add(secret)
        forms.add(urllib.parse.quote(secret, safe=""))
        forms.add(urllib.parse.quote_plus(secret, safe=""))
        forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text
