"""Sign-in: Django's LoginView behind two rate limits (per address, per username) and django-axes' lockout."""

from __future__ import annotations

import logging
import math
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from triage import throttle

logger = logging.getLogger(__name__)

_login = auth_views.LoginView.as_view()


def _refused(request: HttpRequest, *, message: str, wait: int) -> HttpResponse:
    response = render(
        request,
        "registration/login.html",
        {"refusal": message, "retry_after": wait, "next": request.POST.get("next", "")},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        username = request.POST.get("username", "")
        wait = throttle.login_wait(request, username)
        if wait is not None:
            logger.warning(
                "sign-in rate limit reached (user %r, address %s)",
                username[:150],
                throttle.client_ip(request),
            )
            minutes = math.ceil(wait / 60)
            return _refused(
                request,
                wait=wait,
                message=(
                    f"Too many sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
                ),
            )
    return _login(request)


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """django-axes' lockout answer: the sign-in page with the reason, 429 and the seconds left."""
    from axes.models import AccessAttempt

    username = (credentials or {}).get("username") or request.POST.get("username", "")
    last = (
        AccessAttempt.objects.filter(username=username)
        .order_by("-attempt_time")
        .values_list("attempt_time", flat=True)
        .first()
    )
    ends = (last or timezone.now()) + settings.AXES_COOLOFF_TIME
    wait = max(1, math.ceil((ends - timezone.now()).total_seconds()))
    minutes = math.ceil(wait / 60)
    logger.warning("sign-in refused: %r is locked out for %s more seconds", username[:150], wait)
    return _refused(
        request,
        wait=wait,
        message=(
            f"This account is locked after {settings.AXES_FAILURE_LIMIT} failed sign-ins. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, or ask an admin to unlock it."
        ),
    )


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check for sign-ins over HTTP. A call without a request (the test client's
    login(), a management command) is not a sign-in attempt anyone can repeat from outside, so it is not
    checked here and the next backend decides as usual."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
