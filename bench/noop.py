"""The baseline server: a plain Flask app answering every path with a constant JSON body.

Run under the same gunicorn settings as the service, so the ratio evaluate/no-op shows what
the service costs on top of the framework and the server.
"""

from __future__ import annotations

from flask import Flask, Response

app = Flask(__name__)
_BODY = b'{"ok": true}'


@app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
@app.route("/<path:path>", methods=["GET", "POST"])
def noop(path: str) -> Response:
    """Answers 200 with a constant body, whatever the request."""
    return Response(_BODY, status=200, content_type="application/json")
