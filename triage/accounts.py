"""Password reset by email.

A request for a reset is queued for the worker whatever the address, and answered the same way: whether the
address has an account is decided, and mail sent, out of the request, so neither the page nor the time it
takes tells. The link carries Django's reset token: it covers the user's current password hash and last
sign-in, so it stops working once used (or once they sign in), and after PASSWORD_RESET_TIMEOUT.
"""

from __future__ import annotations

import logging
from typing import Any

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from triage import queue

logger = logging.getLogger(__name__)


def password_reset_request(*, email: str, base_url: str) -> None:
    """Queue the reset email. With the broker down nothing is sent; the page still says the same, and the
    person asks again (a reset link is not worth keeping a row for)."""
    queue.publish("send_password_reset", email, base_url)


def password_reset_send(*, email: str, base_url: str) -> int:
    """Email a reset link to each active account with this address and a usable password; the number sent."""
    users = list(PasswordResetForm().get_users(email))
    if not users:
        logger.info("password reset asked for an address with no active account")
        return 0
    minutes = settings.PASSWORD_RESET_TIMEOUT // 60
    for user in users:
        path = reverse("password_reset_confirm", kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        })
        context: dict[str, Any] = {"user": user, "link": base_url + path, "minutes": minutes}
        subject = " ".join(render_to_string("registration/password_reset_subject.txt", context).split())
        body = render_to_string("registration/password_reset_email.txt", context)
        EmailMessage(subject=subject, body=body, to=[getattr(user, user.get_email_field_name())]).send()
        logger.info("password reset link sent to user %s", user.pk)
    return len(users)


def password_reset_done(*, user: Any) -> None:
    """After a new password is set through a reset link: the sign-in lockout no longer holds them back."""
    cleared = axes_reset(username=user.get_username())
    logger.info("password of user %s reset by email; %s failed sign-ins cleared", user.pk, cleared)
