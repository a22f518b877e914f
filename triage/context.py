from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def roles(request: HttpRequest) -> dict[str, Any]:
    from triage.access import is_admin

    user = getattr(request, "user", None)
    return {"is_tierdesk_admin": bool(user is not None and is_admin(user))}
