"""Credentials never reach a message: URLs are quoted with their `user:password@` removed.

Pure and dependency-free, so every layer (schema, stores, Ray heads, CLI) quotes URLs through it.
"""

from __future__ import annotations

import re
from typing import Any

# scheme://user[:password]@rest  ->  scheme://***@rest, inside longer text too. After a scheme the
# userinfo runs to the `@` before the host, spaces included (a malformed URL may carry them; hiding
# too much is the safe error); without a scheme, a `user:pass@host` token is redacted as well.
_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\n]+)@(?=[^\s@'\"]+)"
    r"|(?P<bare>[^\s/@'\"]+)@(?=[^\s@'\"]+)"
)


def redact_url(value: Any) -> str:
    """`value` as text with any URL userinfo (`user:password@`) replaced by `***@`."""
    text = str(value)
    if "@" not in text:  # the common case, and linear: the pattern below can backtrack on long text
        return text

    def _sub(match: re.Match[str]) -> str:
        if match.group("scheme"):
            return f"{match.group('scheme')}***@"
        # A bare `name@host` with no scheme and no password (an e-mail address) is not a credential.
        return "***@" if ":" in match.group("bare") else match.group(0)

    return _USERINFO.sub(_sub, text)


def redact_text(text: str, *secrets: str | None) -> str:
    """`text` with URL userinfo redacted and every given secret value replaced by `***`."""
    out = redact_url(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out
