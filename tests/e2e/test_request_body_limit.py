"""The 5 MiB body limit holds for chunked uploads too, through the real gunicorn server.

A body sent with ``Transfer-Encoding: chunked`` has no Content-Length to refuse up front;
it used to be cut at the limit and the cut text, a valid JSON object followed by spaces,
was evaluated and recorded. Now it is 413 in the error shape and nothing is recorded,
exactly as with a Content-Length.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from api import MAX_CONTENT_LENGTH
from tests.conftest import throwaway_database
from tests.e2e.support import (
    ROOT,
    Server,
    free_port,
    migrate_and_add_people,
    running,
    server_env,
)

pytestmark = pytest.mark.e2e

NAME = "expense-approval"
EVALUATE = f"/v1/rulesets/{NAME}/evaluate"
PEOPLE = {"admin": ["--admin"], "finance-lead": [], "finance-deputy": [], "ops-oncall": [],
          "ops-lead": [], "controller": [], "cfo": [], "rules-dev": [], "platform-dev": []}
BODY = json.dumps({"input": {"amount": 20, "category": "meals"}}).encode()
PADDING = 50 * 1024 * 1024  # 50 MB of spaces after a valid body
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`rules-service serve` (gunicorn) on a fresh database, expense-approval active."""
    workdir: Path = tmp_path_factory.mktemp("limit")
    with throwaway_database(workdir) as url:
        env = server_env(url)

        tokens = migrate_and_add_people(workdir, env, PEOPLE)
        port = free_port()
        with running(["serve", "--host", "127.0.0.1", "--port", str(port)], workdir, env,
                     port, tokens) as served:
            content = (ROOT / "rulesets" / f"{NAME}.yaml").read_text(encoding="utf-8")
            status, body, _ = served.call("POST", f"/v1/rulesets/{NAME}/versions",
                                          {"content": content})
            assert status == 201, body
            for who in ("finance-lead", "controller"):
                status, body, _ = served.call(
                    "POST", f"/v1/rulesets/{NAME}/versions/1/signoffs",
                    {"decision": "approve"}, who=who)
                assert status == 201, body
            yield served


def _post(server: Server, padding: int, *, chunked: bool) -> tuple[int, bytes]:
    """(status, body) of POST evaluate with ``padding`` spaces after a valid JSON body."""
    port = int(server.base.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest("POST", EVALUATE)
        connection.putheader("Authorization", f"Bearer {server.tokens['admin']}")
        connection.putheader("Content-Type", "application/json")
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        else:
            connection.putheader("Content-Length", str(len(BODY) + padding))
        connection.endheaders()
        pieces = [BODY] + [b" " * CHUNK] * (padding // CHUNK) + [b" " * (padding % CHUNK)]
        try:
            for piece in pieces:
                if not piece:
                    continue
                connection.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                connection.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and stopped reading: its answer is still there
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _recorded(server: Server) -> int:
    status, page, _ = server.call("GET", "/v1/decisions?limit=1000")
    assert status == 200
    return len(page["decisions"])


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_body_over_the_limit_is_413_and_nothing_is_recorded(
        server: Server, chunked: bool) -> None:
    before = _recorded(server)
    status, raw = _post(server, PADDING, chunked=chunked)
    assert status == 413, raw[:300]
    error = json.loads(raw)["error"]
    assert error["code"] == "payload_too_large"
    assert set(error) == {"code", "message", "details"}
    assert _recorded(server) == before


def test_a_chunked_body_just_over_the_limit_is_413(server: Server) -> None:
    before = _recorded(server)
    status, raw = _post(server, MAX_CONTENT_LENGTH - len(BODY) + 1, chunked=True)
    assert status == 413, raw[:300]
    assert _recorded(server) == before


def test_a_chunked_body_within_the_limit_is_evaluated_and_recorded(server: Server) -> None:
    before = _recorded(server)
    status, raw = _post(server, MAX_CONTENT_LENGTH - len(BODY), chunked=True)
    assert status == 200, raw[:300]
    assert json.loads(raw)["outcome"] == "approve"
    assert _recorded(server) == before + 1
