from __future__ import annotations

from django.apps import AppConfig


class TriageConfig(AppConfig):
    name = "triage"
    verbose_name = "Triage"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from triage.sessions import stamp_sign_in

        user_logged_in.connect(stamp_sign_in, dispatch_uid="tierdesk-session-stamp")
