"""Credentials never reach a message: URLs are quoted with their `user:password@` removed.

Pure and dependency-free, so every layer (schema, stores, Ray heads, CLI) quotes URLs through it.
"""

from __future__ import annotations

import re
from typing import Any

# scheme://user[:password]@rest  ->  scheme://***@rest. Matches inside longer text too, and also
# a userinfo on a scheme-less `user:pass@host` (what a malformed URL often looks like).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)?(?P<userinfo>[^\s/@'\"]+)@(?=[^\s@'\"]+)")


def redact_url(value: Any) -> str:
    """`value` as text with any URL userinfo (`user:password@`) replaced by `***@`."""
    text = str(value)

    def _sub(match: re.Match[str]) -> str:
        scheme = match.group("scheme") or ""
        userinfo = match.group("userinfo")
        # A bare `name@host` with no scheme and no password (an e-mail address) is not a credential.
        if not scheme and ":" not in userinfo:
            return match.group(0)
        return f"{scheme}***@"

    return _USERINFO.sub(_sub, text)


def redact_text(text: str, *secrets: str | None) -> str:
    """`text` with URL userinfo redacted and every given secret value replaced by `***`."""
    out = redact_url(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out
