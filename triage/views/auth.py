"""Sign-in: Django's LoginView behind two rate limits (per address, per username) and django-axes' lockout.
Password reset: Django's reset views, with the email sent by the worker (triage/accounts.py) behind two rate
limits (per address, per email address)."""

from __future__ import annotations

import logging
import math
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm, SetPasswordForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from triage import accounts, throttle

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


class _PasswordResetView(auth_views.PasswordResetView):
    """The form, then the same "sent" page for any address: the worker decides whether there is anyone to mail."""

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        base_url = settings.SITE_URL or f"{self.request.scheme}://{self.request.get_host()}"
        accounts.password_reset_request(email=form.cleaned_data["email"], base_url=base_url)
        return HttpResponseRedirect(self.get_success_url())


_password_reset = _PasswordResetView.as_view()


@csrf_protect
@never_cache
def password_reset(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        email = request.POST.get("email", "")
        wait = throttle.password_reset_wait(request, email)
        if wait is not None:
            logger.warning("password reset rate limit reached (address %s)", throttle.client_ip(request))
            minutes = math.ceil(wait / 60)
            response = render(
                request,
                "registration/password_reset_form.html",
                {
                    "form": PasswordResetForm(request.POST),
                    "refusal": f"Too many reset requests. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                },
                status=429,
            )
            response["Retry-After"] = str(wait)
            return response
    return _password_reset(request)


class _PasswordResetDoneView(auth_views.PasswordResetDoneView):
    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "minutes": settings.PASSWORD_RESET_TIMEOUT // 60}


password_reset_done = _PasswordResetDoneView.as_view()


class _PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        response = super().form_valid(form)
        accounts.password_reset_done(user=form.user)
        return response


password_reset_confirm = _PasswordResetConfirmView.as_view()  # its passwords are sensitive_post_parameters
password_reset_complete = auth_views.PasswordResetCompleteView.as_view()
