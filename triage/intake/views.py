"""Provider webhooks under /inbound/<provider>/: authenticate, parse, ingest, answer per retry contract.

Nothing is written before the delivery is authenticated and parsed; a duplicate is answered as a
success so the provider stops resending it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from triage.intake import providers
from triage.intake.ingest import email_ingest
from triage.intake.types import InboundEmail, InboundError
from triage.throttle import webhook_limited

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 60


def _answer(provider: str, error: InboundError | None, detail: dict[str, object]) -> HttpResponse:
    status = providers.status_for(provider, error)
    body = detail if error is None else {"detail": error.message}
    response = JsonResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="tierdesk-inbound"'
    return response


def _handle(provider: str, request: HttpRequest, parse: Callable[[], tuple[InboundEmail, str]],
            on_transient: Callable[[], None] | None = None) -> HttpResponse:
    try:
        email, event_id = parse()
        result = email_ingest(email, provider=provider, event_id=event_id or "")
    except InboundError as exc:
        logger.info("inbound %s refused: %s", provider, exc.message)
        if not exc.permanent and on_transient is not None:
            on_transient()
        return _answer(provider, exc, {})
    except DatabaseError:
        logger.exception("inbound %s: database unavailable", provider)
        if on_transient is not None:
            on_transient()
        return _answer(provider, InboundError("temporarily unable to store the message", permanent=False), {})
    return _answer(provider, None, {"outcome": result.outcome,
                                    "ticket": result.ticket.token if result.ticket else None})


def _limits() -> dict[str, int]:
    return {"max_attachment_bytes": settings.TIERDESK_MAX_ATTACHMENT_BYTES,
            "max_attachments": settings.TIERDESK_MAX_ATTACHMENTS}


def _not_configured(provider: str) -> HttpResponse:
    return JsonResponse({"detail": f"the {provider} inbound endpoint is not configured"}, status=404)


@csrf_exempt
@webhook_limited
@require_POST
def postmark(request: HttpRequest) -> HttpResponse:
    if not (settings.POSTMARK_INBOUND_USER and settings.POSTMARK_INBOUND_PASSWORD):
        return _not_configured("postmark")

    def parse() -> tuple[InboundEmail, str]:
        providers.postmark_authenticate(request.headers.get("Authorization"),
                                        username=settings.POSTMARK_INBOUND_USER,
                                        password=settings.POSTMARK_INBOUND_PASSWORD)
        return providers.postmark_parse(request.body, **_limits())

    return _handle(providers.POSTMARK, request, parse)


@csrf_exempt
@webhook_limited
@require_POST
def mailgun(request: HttpRequest) -> HttpResponse:
    if not settings.MAILGUN_SIGNING_KEY:
        return _not_configured("mailgun")

    verified: list[str] = []

    def parse() -> tuple[InboundEmail, str]:
        fields, files = providers.parse_form(request.body, request.META.get("CONTENT_TYPE", ""))

        def text(name: str) -> str:
            value = fields.get(name, b"")
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

        # Mailgun retries a failed delivery for 8 hours, possibly with the first attempt's signature, so
        # the window covers that schedule; the one-time token is what stops a replay within it.
        providers.mailgun_verify(timestamp=text("timestamp"), token=text("token"), signature=text("signature"),
                                 signing_key=settings.MAILGUN_SIGNING_KEY, max_age=settings.MAILGUN_MAX_AGE,
                                 seen=providers.redis_token_cache(settings.REDIS_URL))
        verified.append(text("token"))
        return providers.mailgun_parse(fields, files, **_limits())

    def release() -> None:
        for token in verified:
            providers.redis_token_release(settings.REDIS_URL, token)

    return _handle(providers.MAILGUN, request, parse, on_transient=release)


@csrf_exempt
@webhook_limited
@require_POST
def sendgrid(request: HttpRequest, secret: str | None = None) -> HttpResponse:
    if not (settings.SENDGRID_INBOUND_SECRET or settings.SENDGRID_INBOUND_PASSWORD):
        return _not_configured("sendgrid")

    def parse() -> tuple[InboundEmail, str]:
        providers.sendgrid_authenticate(url_secret=secret, authorization_header=request.headers.get("Authorization"),
                                        secret=settings.SENDGRID_INBOUND_SECRET,
                                        username=settings.SENDGRID_INBOUND_USER,
                                        password=settings.SENDGRID_INBOUND_PASSWORD)
        fields, files = providers.parse_form(request.body, request.META.get("CONTENT_TYPE", ""))
        return providers.sendgrid_parse(fields, files, **_limits())

    return _handle(providers.SENDGRID, request, parse)
