"""The pages people use in a browser: server-rendered over the same services as the API.

Signed-in people are kept in Flask's signed session cookie (HttpOnly, SameSite=Lax, Secure
over https); every POST must carry the CSRF token of the session (Flask-WTF). The JSON API
under /v1 keeps bearer tokens and is neither session-authenticated nor CSRF-checked.
"""

from __future__ import annotations

# The views register themselves on ``bp`` when imported.
from api.pages import (  # noqa: F401
    dashboard,
    decisions,
    escalations,
    filters,
    mail,
    propose,
    reports,
    review,
    rulesets,
    shadow,
    signin,
)
from api.pages.blueprint import bp

__all__ = ["bp"]
