"""Blanks: the slots of a reply nobody has filled yet, written `[[order number]]`.

A macro's placeholder the ticket cannot fill, or a slot a drafting engine could not fill, becomes a blank. A
reply that still holds one is never sent: the customer would read the brackets. The drafting engine, the
composer and the approval share this one definition so the page highlights exactly what the send refuses.
"""

from __future__ import annotations

import re

# Up to 60 characters and one line, so a stray "[[" in pasted text cannot swallow a paragraph.
BLANK = re.compile(r"\[\[[^\[\]\n]{1,60}\]\]")


def blanks(text: str) -> list[str]:
    """The distinct blanks in `text`, in the order they first appear."""
    return list(dict.fromkeys(BLANK.findall(text or "")))


def blank(slot: str) -> str:
    """The blank for a slot name: `order_number` → `[[order number]]`."""
    return f"[[{slot.replace('_', ' ').strip()}]]"


def refusal(text: str) -> str | None:
    """Why `text` cannot be sent as it stands, or None."""
    found = blanks(text)
    if not found:
        return None
    return f"Fill in the highlighted blanks before sending: {', '.join(found)}"
