"""RFC 7807 problem details: every error of the sessions API (application/problem+json).

`Problem` is raised by the sessions code and answered by the app; `problem_body` writes one.
The `type` is a URI per kind of problem (docs/sessions.md lists them); `field` names the
request field at fault, `session_id` the session a failure left behind (its message stored).
"""

from __future__ import annotations

import json
from http import HTTPStatus

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://ollama-fleet.dev/problems/"


class Problem(Exception):
    """An answer of the sessions API that is an error: status, slug (the type's last part)."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        field: str | None = None,
        session_id: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail
        self.field, self.session_id, self.headers = field, session_id, headers


# RFC 9110's reason phrases, fixed here: Python's http.HTTPStatus renames some between versions
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def title(status: int) -> str:
    """RFC 9110's reason phrase for `status` ("Unprocessable Content" for 422)."""
    if status in TITLES:
        return TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(
    status: int,
    slug: str,
    detail: str,
    *,
    instance: str,
    field: str | None = None,
    session_id: str | None = None,
) -> bytes:
    """The JSON body: type, title, status, detail, instance, and field/session_id if any."""
    data: dict[str, object] = {
        "type": TYPE_BASE + slug,
        "title": title(status),
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if field is not None:
        data["field"] = field
    if session_id is not None:
        data["session_id"] = session_id
    return json.dumps(data, separators=(",", ":")).encode()


def slug_for(status: int) -> str:
    """The problem type of an error the gateway answers for any route (auth, limits, nodes)."""
    return {
        400: "bad-request",
        401: "unauthorized",
        403: "forbidden",
        404: "not-found",
        405: "method-not-allowed",
        413: "too-large",
        422: "invalid-field",
        429: "rate-limited",
        502: "upstream-error",
        503: "unavailable",
        504: "upstream-timeout",
    }.get(status, "error")
