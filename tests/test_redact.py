"""URL credentials never reach a message: the one helper every layer quotes URLs through."""

import pytest

from mixpeek_infra.redact import redact_text, redact_url


@pytest.mark.parametrize("text, shown", [
    ("http://u:p@h:1/x", "http://***@h:1/x"),
    ("ray://admin:s3cr3t@host:10001", "ray://***@host:10001"),
    ("https://token@qdrant.example:6333", "https://***@qdrant.example:6333"),
    ("malformed user:pw@host", "malformed ***@host"),
    ("x http://user:pa ss@host/y z", "x http://***@host/y z"),
    ("qdrant_url: 'http://a:b@evil' is not valid", "qdrant_url: 'http://***@evil' is not valid"),
    ("mail a@b.com", "mail a@b.com"),
    ("https://h:6333", "https://h:6333"),
    ("http://h/a@b", "http://h/a@b"),
])
def test_redact_url(text, shown):
    assert redact_url(text) == shown


def test_redact_text_hides_given_secrets_too():
    assert redact_text("key qk-1 at http://u:p@h", "qk-1", None) == "key *** at http://***@h"
