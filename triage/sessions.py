"""Signed-in sessions end when idle, and optionally at an absolute age; htmx requests that find no session are
sent to sign in as a whole page.

Idle: a session lives SESSION_COOKIE_AGE (TIERDESK_SESSION_IDLE_MINUTES) from its last save, in the store and
in the cookie. Saving on every request would write the session row on each of the queue's polls (every 5 s
per open queue), so a request moves the expiry forward only once a tenth of the limit has passed since it last
did: an idle session ends between 90% and 100% of the limit after its last request. Polls (requests that send
X-Tierdesk-Poll) never move it, so a queue left open on an unattended screen signs out like any idle page.

Absolute: with TIERDESK_SESSION_MAX_HOURS set, a session signed in longer ago than that is signed out at its
next request, however busy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

SIGNED_IN_AT = "_tierdesk_signed_in_at"
RENEWED_AT = "_tierdesk_renewed_at"
POLL_HEADER = "X-Tierdesk-Poll"

logger = logging.getLogger(__name__)


def renew_every_s() -> int:
    return max(1, settings.SESSION_COOKIE_AGE // 10)


def stamp_sign_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """On user_logged_in: login() has just saved a new session, with the full idle limit ahead of it."""
    now = int(time.time())
    request.session[SIGNED_IN_AT] = now
    request.session[RENEWED_AT] = now


class SessionTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = request.session
        if auth.SESSION_KEY not in session:
            return self.get_response(request)
        now = int(time.time())
        signed_in = session.setdefault(SIGNED_IN_AT, now)  # a session older than these stamps counts from now
        max_age = settings.SESSION_MAX_AGE_S
        if max_age and now - signed_in >= max_age:
            logger.info("session of user %s ended: signed in %s seconds ago", session[auth.SESSION_KEY],
                        now - signed_in)
            auth.logout(request)
        elif request.headers.get(POLL_HEADER) is None and now - session.get(RENEWED_AT, 0) >= renew_every_s():
            session[RENEWED_AT] = now  # modified: SessionMiddleware saves it, with the expiry moved forward
        return self.get_response(request)


def htmx_sign_in_redirect(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """An htmx request sent to sign in (its session ended) gets HX-Redirect instead of the 302: the browser's
    XMLHttpRequest would follow a 302 itself, and htmx would swap the sign-in page into a table row. The page
    to come back to is the one the agent was on, not the fragment's URL."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if response.status_code != 302 or request.headers.get("HX-Request") != "true":
            return response
        login = resolve_url(settings.LOGIN_URL)
        if urlsplit(response["Location"]).path != login:
            return response
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        back = (current.path if current.path.startswith("/") and not current.path.startswith("//") else "/") + (
            f"?{current.query}" if current.query else ""
        )
        return HttpResponseClientRedirect(f"{login}?{urlencode({'next': back})}")

    return middleware
