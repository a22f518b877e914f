"""Number formats for the dashboard's tables: shares as percentages, dollars with the digits that matter."""

from __future__ import annotations

import math
from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def percent(share: float | None, places: int = 1) -> str:
    return "—" if share is None else f"{100 * share:.{places}f}%"


@register.filter
def usd(value: Decimal | float | None) -> str:
    """$1,234.57 for large amounts; three significant digits for fractions of a cent per ticket."""
    if value is None:
        return "—"
    amount = float(value)
    if amount == 0:
        return "$0"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    places = min(8, max(2, 2 - math.floor(math.log10(abs(amount)))))
    return f"${amount:.{places}f}"


@register.filter
def number(value: float | None, places: int = 0) -> str:
    return "—" if value is None else f"{value:,.{places}f}"
