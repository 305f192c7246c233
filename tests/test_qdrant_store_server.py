"""ServerStore specifics: bounded retries of transient errors, an unreachable server failing within
its timeout with the URL (never the key) in the message, version gating of adding a named vector."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from conftest import free_port
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from mixpeek_infra.qdrant.store import TargetUnavailable
from mixpeek_infra.qdrant.store.retry import retry  # the module, not a package name: the submodule would shadow it
from mixpeek_infra.qdrant.store.server import ServerStore, _is_transient, grpc_port_of

pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning")

KEY = "very-secret-qdrant-key-123"


def _http_error(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "err", b'{"status": "error"}', httpx.Headers())


@pytest.mark.parametrize("exc, transient", [
    (ResponseHandlingException(httpx.ConnectError("refused")), True),
    (_http_error(503), True),
    (_http_error(502), True),
    (_http_error(429), True),
    (_http_error(404), False),
    (_http_error(400), False),
    (_http_error(401), False),
    (ValueError("bad"), False),
])
def test_transient_classification(exc, transient):
    assert _is_transient(exc) is transient


def test_retry_recovers_from_transient_errors_with_bounded_backoff():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise _http_error(503)
        return "ok"

    assert retry(flaky, is_transient=_is_transient, deadline_s=10, describe=lambda e, n, t: RuntimeError(),
                 sleep=sleeps.append) == "ok"
    assert len(calls) == 3
    assert sleeps == [0.2, 0.4]


def test_retry_gives_up_after_max_attempts_and_describes():
    sleeps = []

    def down():
        raise _http_error(503)

    with pytest.raises(RuntimeError, match="gave up after 6"):
        retry(down, is_transient=_is_transient, deadline_s=100, sleep=sleeps.append,
              describe=lambda e, n, t: RuntimeError(f"gave up after {n}"))
    assert max(sleeps) <= 2.0 and len(sleeps) == 5


def test_non_transient_errors_are_not_retried():
    calls = []

    def bad():
        calls.append(1)
        raise _http_error(400)

    with pytest.raises(UnexpectedResponse):
        retry(bad, is_transient=_is_transient, deadline_s=10, describe=lambda e, n, t: RuntimeError())
    assert calls == [1]


def test_unreachable_server_fails_within_timeout_naming_the_url_not_the_key():
    url = f"http://127.0.0.1:{free_port()}"
    store = ServerStore.connect(url, api_key=KEY, timeout=1.0)
    start = time.monotonic()
    with pytest.raises(TargetUnavailable) as info:
        store.read_collection("ns_0123456789")
    elapsed = time.monotonic() - start
    assert elapsed < 60, elapsed  # it gives up (a 1 s deadline) instead of hanging; generous for a loaded machine
    message = str(info.value)
    assert url in message and KEY not in message
    assert "attempt" in message


def test_a_preview_check_reads_an_unreachable_server_once():
    """Inside `one_attempt` (the checks preview runs) a read makes one attempt; outside it, the usual retries."""
    url = f"http://127.0.0.1:{free_port()}"
    store = ServerStore.connect(url, api_key=KEY, timeout=30.0)
    with store.one_attempt(), pytest.raises(TargetUnavailable) as once:
        store.read_owner("ns_0123456789")
    assert "after 1 attempt(s)" in str(once.value), once.value
    with pytest.raises(TargetUnavailable) as patient:
        store.read_owner("ns_0123456789")
    assert "after 1 attempt(s)" not in str(patient.value), patient.value


def test_adding_a_vector_needs_server_1_18(tmp_path):
    from qdrant_client import QdrantClient

    from mixpeek_infra.qdrant.store import QdrantError

    store = ServerStore(QdrantClient(path=str(tmp_path / "local")))
    assert store.supports_add_vector()  # local mode reports qdrant-client's version (>= 1.18)
    store.create_collection("c1", {"a": {"size": 2, "distance": "cosine"}}, {})
    store._version = (1, 17)  # what a 1.17 server reports
    assert not store.supports_add_vector()
    with pytest.raises(QdrantError, match="1.18"):
        store.add_vector("c1", "b", {"size": 2, "distance": "cosine"})
    store.close()


@pytest.mark.parametrize("url, port", [("https://qdrant.internal", 6334), ("http://127.0.0.1:6333", 6334),
                                       ("http://127.0.0.1:40001/prefix", 40002), ("https://h:443", 444)])
def test_grpc_goes_to_the_port_after_the_urls(url, port):
    """`prefer_grpc`: the URL's port + 1 (Qdrant's 6333/6334 pairing); qdrant-client alone would use 6334 always."""
    assert grpc_port_of(url) == port
    store = ServerStore.connect(url, prefer_grpc=True)
    try:
        assert store.client._client._grpc_port == port
    finally:
        store.close()
