"""A logging filter that keeps customers' contact and payment details out of every log line.

Installed on the handlers in settings.LOGGING (and on Celery's, see triage/celery.py), so it applies to
whatever logged the record: our code, Django, Celery, axes. It uses the same detection as the redaction
before model calls (triage/policy.py): email addresses, and phone, card and IBAN numbers that validate.
"""

from __future__ import annotations

import logging
import re

from triage import policy

_FORMATTER = logging.Formatter()
_DIGIT = re.compile(r"\d")
# Fewer digits than the shortest phone number worth redacting cannot hold a phone, card or IBAN.
_MIN_DIGITS = 7
# Timestamps are in most log lines, and their seconds and microseconds ("48.123456") validate as a phone
# number in some regions; they are never PII.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")


def redact_text(text: str) -> str:
    if "@" not in text and len(_DIGIT.findall(text)) < _MIN_DIGITS:
        return text  # the common case, without running the detectors
    pieces: list[str] = []
    cursor = 0
    stamps = [(m.start(), m.end()) for m in _TIMESTAMP.finditer(text)]
    for match in policy.find_pii(text):
        if any(start <= match.start and match.end <= end for start, end in stamps):
            continue
        pieces.append(text[cursor : match.start])
        pieces.append(f"[{match.type}]")
        cursor = match.end
    pieces.append(text[cursor:])
    return "".join(pieces)


class RedactPii(logging.Filter):
    """Rewrites the record's message, exception text and stack in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging itself reports it when it formats the record
            return True
        redacted = redact_text(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True
