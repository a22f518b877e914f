"""Errors under /api/ are JSON with a `detail`, whoever produced them.

The API's own refusals already are (triage/api.py's handlers); this covers the ones made before a request
reaches an endpoint: a method the path does not take (django-ninja answers it in plain text), a path that
does not exist (Django's HTML page), a body over the size limit, an unhandled error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def api_errors_as_json(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith(API_PREFIX)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        try:
            phrase = HTTPStatus(response.status_code).phrase
        except ValueError:
            phrase = "error"
        allowed = response.get("Allow", "other methods")
        detail = {
            405: f"this path does not take {request.method}; it takes {allowed}",
            404: "no such API path",
        }.get(response.status_code, phrase.lower())
        replaced = JsonResponse({"detail": detail}, status=response.status_code)
        for header in _KEPT_HEADERS:
            if header in response:
                replaced[header] = response[header]
        return replaced

    return middleware


DATABASE_RETRY_AFTER_S = 5


class DatabaseUnavailableMiddleware:
    """A request that finds the database unreachable (a restart, a failover) gets 503 with Retry-After instead
    of a 500: nothing was stored, and a client that retries (with the same Idempotency-Key) loses nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("database unavailable for %s %s: %s", request.method, request.path, exception)
        message = "the database is unavailable; nothing was stored. Retry shortly"
        response: HttpResponse
        if request.path.startswith(API_PREFIX):
            response = JsonResponse({"detail": message}, status=503)
        else:
            response = HttpResponse(f"Tierdesk is briefly unavailable: {message}.", status=503,
                                    content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
