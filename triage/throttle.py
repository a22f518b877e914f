"""Rate limits: sign-in attempts per address and per username, password-reset requests per address and per
email address, API requests per key, webhook deliveries per address. Counters are django-ratelimit's fixed windows in the Redis cache, so every gunicorn worker shares
them; a refused request gets 429 with Retry-After, the seconds until its window ends.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_ratelimit.core import get_usage

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """The client's address: the peer, or with TIERDESK_TRUSTED_PROXIES=N the address the outermost of the N
    proxies saw, read from the right of X-Forwarded-For (anything further left the client could have
    written itself)."""
    peer = request.META.get("REMOTE_ADDR") or "0.0.0.0"
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return peer
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    if len(hops) < count:
        return peer
    candidate = hops[-count]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


def axes_client_ip(request: HttpRequest) -> str:
    return client_ip(request)


def seconds_to_wait(request: HttpRequest, *, group: str, key: str, rate: str | None) -> int | None:
    """Count this request against `key` in `group`; the seconds to wait when it is over `rate`, else None.

    Redis being unreachable lets the request through with a warning: an outage of the counter store must
    not take sign-in, intake and webhooks down with it (the login lockout is kept in the database).
    """
    if rate is None:
        return None
    try:
        usage = get_usage(request, group=group, key=lambda _group, _request: key, rate=rate, increment=True)
    except Exception:  # redis-py raises ConnectionError, TimeoutError, ...; the limit fails open
        logger.warning("rate limit store unavailable; %s not counted", group, exc_info=True)
        return None
    if usage is None or not usage["should_limit"]:
        return None
    if usage["limit"] == 0:  # the cache answered neither add nor incr: treat like an outage
        logger.warning("rate limit store gave no count; %s not counted", group)
        return None
    return max(1, int(usage["time_left"]))


def too_many_json(wait: int, what: str) -> JsonResponse:
    response = JsonResponse(
        {"detail": f"too many {what}; retry in {wait} seconds", "retry_after": wait}, status=429
    )
    response["Retry-After"] = str(wait)
    return response


def webhook_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Limit deliveries per source address, before authentication, so guessing a URL secret or Basic
    credentials is slow. Postmark and Mailgun retry a 429; keep the limit far above real traffic."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = seconds_to_wait(
            request, group="webhook-ip", key=client_ip(request), rate=settings.RATE_WEBHOOK_IP
        )
        if wait is not None:
            logger.warning("inbound webhook rate limit reached for %s", client_ip(request))
            return too_many_json(wait, "webhook deliveries from this address")
        return view(request, *args, **kwargs)

    return wrapped


def api_key_wait(request: HttpRequest, key_id: int) -> int | None:
    return seconds_to_wait(request, group="api-key", key=str(key_id), rate=settings.RATE_API_KEY)


def login_wait(request: HttpRequest, username: str) -> int | None:
    """Both sign-in limits count every attempt; the first that is over decides."""
    by_ip = seconds_to_wait(request, group="login-ip", key=client_ip(request), rate=settings.RATE_LOGIN_IP)
    # Case-folded, so Alice and alice share one budget as they share one account.
    by_name = (
        seconds_to_wait(
            request,
            group="login-username",
            key=username.strip().casefold(),
            rate=settings.RATE_LOGIN_USERNAME,
        )
        if username.strip()
        else None
    )
    waits = [w for w in (by_ip, by_name) if w is not None]
    return max(waits) if waits else None


def password_reset_wait(request: HttpRequest, email: str) -> int | None:
    """Both reset limits count every request, for an address with an account or not, so neither a refusal nor
    its timing tells whether the address has one."""
    by_ip = seconds_to_wait(request, group="reset-ip", key=client_ip(request), rate=settings.RATE_RESET_IP)
    by_email = (
        seconds_to_wait(request, group="reset-email", key=email.strip().casefold(), rate=settings.RATE_RESET_EMAIL)
        if email.strip()
        else None
    )
    waits = [w for w in (by_ip, by_email) if w is not None]
    return max(waits) if waits else None
