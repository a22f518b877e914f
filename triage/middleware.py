"""Errors under /api/ are JSON with a `detail`, whoever produced them.

The API's own refusals already are (triage/api.py's handlers); this covers the ones made before a request
reaches an endpoint: a method the path does not take (django-ninja answers it in plain text), a path that
does not exist (Django's HTML page), a body over the size limit, an unhandled error.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse

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
