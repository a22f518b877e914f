"""Template helpers for the ticket page: a draft's citation markers as buttons that open the cited passage, and
the blanks a reply must not be sent with."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from triage import blanks as _blanks

register = template.Library()

_MARKER = re.compile(r"\[(\d{1,3})\]")


def _button(draft_id: int, marker: int) -> SafeString:
    return format_html(
        '<button type="button" class="cite" popovertarget="cite-{}-{}" data-testid="cite-marker" '
        'aria-label="Show cited passage {}">[{}]</button>', draft_id, marker, marker, marker)


@register.simple_tag
def cited_text(text: str, draft_id: int, citations: Iterable[Any]) -> SafeString:
    """The draft's text, escaped, with each marker that names a citation turned into a button."""
    markers = {c.marker for c in citations}
    parts: list[str] = []
    position = 0
    for match in _MARKER.finditer(text):
        marker = int(match.group(1))
        if marker in markers:
            parts += [escape(text[position:match.start()]), _button(draft_id, marker)]
            position = match.end()
    parts.append(escape(text[position:]))
    return mark_safe("".join(parts))  # every piece above is escaped or built by format_html


@register.filter
def cited_in(citations: Iterable[Any], text: str) -> list[Any]:
    """The citations whose marker appears in `text`, in the order the text first uses them."""
    first = {}
    for match in _MARKER.finditer(text or ""):
        first.setdefault(int(match.group(1)), match.start())
    return sorted((c for c in citations if c.marker in first), key=lambda c: first[c.marker])


@register.filter
def blanks_in(text: str) -> list[str]:
    """The unfilled blanks (`[[order number]]`) in a reply, which keep it from being sent."""
    return _blanks.blanks(text)


@register.filter
def blanks_marked(text: str) -> SafeString:
    """The text, escaped, with each blank wrapped in <mark class="blank"> (ticket.js does the same as the agent
    types, with the same pattern)."""
    parts: list[str] = []
    position = 0
    for match in _blanks.BLANK.finditer(text or ""):
        parts += [escape(text[position:match.start()]), format_html('<mark class="blank">{}</mark>', match.group())]
        position = match.end()
    parts.append(escape((text or "")[position:]))
    return mark_safe("".join(parts))  # every piece above is escaped or built by format_html


@register.filter
def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff's lines, each with its kind (add, del, meta, same) for colouring."""
    lines = []
    for line in (diff or "").splitlines():
        kind = ("meta" if line.startswith(("---", "+++", "@@")) else "add" if line.startswith("+")
                else "del" if line.startswith("-") else "same")
        lines.append((kind, line))
    return lines
