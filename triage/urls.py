from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from triage import views
from triage.api import api

urlpatterns = [
    path("", views.queue, name="queue"),
    path("tickets/<int:ticket_id>/", views.ticket_detail, name="ticket_detail"),
    path("tickets/<int:ticket_id>/drafts/<int:draft_id>/approve", views.draft_approve, name="draft_approve"),
    path("tickets/<int:ticket_id>/drafts/<int:draft_id>/reject", views.draft_reject, name="draft_reject"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
]
