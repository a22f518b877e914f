from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from triage.api import api
from triage.intake import views as inbound
from triage.views import admin as views_admin
from triage.views import auth as views_auth
from triage.views import dashboard as views_dashboard
from triage.views import evals as views_evals
from triage.views import kb_index as views_kb_index
from triage.views import macros as views_macros
from triage.views import queue as views_queue
from triage.views import team as views_team
from triage.views import tickets as views

urlpatterns = [
    path("", views_queue.queue, name="queue"),
    path("queue/actions", views_queue.queue_action, name="queue_action"),
    path("tickets/<int:ticket_id>/", views.ticket_detail, name="ticket_detail"),
    path("tickets/<int:ticket_id>/attachments/<int:attachment_id>", views.attachment_download,
         name="attachment_download"),
    path("tickets/<int:ticket_id>/drafts/<int:draft_id>/approve", views.draft_approve, name="draft_approve"),
    path("tickets/<int:ticket_id>/drafts/<int:draft_id>/reject", views.draft_reject, name="draft_reject"),
    path("tickets/<int:ticket_id>/drafts/<int:draft_id>/regenerate", views.draft_regenerate,
         name="draft_regenerate"),
    path("tickets/<int:ticket_id>/escalate", views.ticket_escalate, name="ticket_escalate"),
    path("tickets/<int:ticket_id>/correct", views.ticket_correct, name="ticket_correct"),
    path("tickets/<int:ticket_id>/notes", views.ticket_note, name="ticket_note"),
    path("tickets/<int:ticket_id>/reply", views.reply_send, name="reply_send"),
    path("tickets/<int:ticket_id>/macros", views.macro_picker, name="macro_picker"),
    path("tickets/<int:ticket_id>/macros/<int:macro_id>", views.macro_fill, name="macro_fill"),
    path("dashboard", views_dashboard.dashboard_page, name="dashboard"),
    path("settings/learning", views_evals.learning_page, name="settings_learning"),
    path("settings/learning/train", views_evals.learning_train, name="settings_learning_train"),
    path("settings/jobs/<int:job_id>", views_evals.job_status, name="settings_job"),
    path("settings/evals", views_evals.evals_page, name="settings_evals"),
    path("settings/evals/start", views_evals.eval_start, name="settings_eval_start"),
    path("settings/evals/replay", views_evals.replay_start, name="settings_replay_start"),
    path("settings/evals/drafts", views_evals.draft_eval_start, name="settings_draft_eval_start"),
    path("settings/evals/draft-replay", views_evals.draft_replay_start, name="settings_draft_replay_start"),
    path("settings/evals/<int:run_id>", views_evals.eval_detail, name="settings_eval_detail"),
    path("settings/sla", views_team.sla_page, name="settings_sla"),
    path("settings/team", views_team.team_page, name="settings_team"),
    path("settings/team/<int:user_id>", views_team.team_member, name="settings_team_member"),
    path("settings/macros", views_macros.macros_page, name="settings_macros"),
    path("settings/macros/<int:macro_id>", views_macros.macro_edit, name="settings_macro_edit"),
    path("settings/macros/<int:macro_id>/active", views_macros.macro_active, name="settings_macro_active"),
    path("settings/routing", views_admin.routing_page, name="settings_routing"),
    path("settings/routing/preview", views_admin.routing_preview, name="settings_routing_preview"),
    path("settings/routing/publish", views_admin.routing_publish, name="settings_routing_publish"),
    path("settings/routing/sensitive", views_admin.intent_sensitive, name="settings_intent_sensitive"),
    path("settings/switches", views_admin.switches_page, name="settings_switches"),
    path("settings/prompts", views_admin.prompts_page, name="settings_prompts"),
    path("settings/gates", views_admin.gates_page, name="settings_gates"),
    path("settings/shadow", views_admin.shadow_page, name="settings_shadow"),
    path("settings/audit", views_admin.audit_page, name="settings_audit"),
    path("kb/", include("kb.urls")),
    path("settings/kb/index", views_kb_index.kb_index_page, name="settings_kb_index"),
    path("inbound/postmark/", inbound.postmark, name="inbound_postmark"),
    path("inbound/mailgun/", inbound.mailgun, name="inbound_mailgun"),
    path("inbound/mailgun/mime", inbound.mailgun, name="inbound_mailgun_mime"),
    path("inbound/sendgrid/", inbound.sendgrid, name="inbound_sendgrid"),
    path("inbound/sendgrid/<str:secret>/", inbound.sendgrid, name="inbound_sendgrid_secret"),
    path("login/", views_auth.login, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/reset/", views_auth.password_reset, name="password_reset"),
    path("password/reset/sent", views_auth.password_reset_done, name="password_reset_done"),
    path("password/reset/<uidb64>/<token>/", views_auth.password_reset_confirm, name="password_reset_confirm"),
    path("password/reset/done", views_auth.password_reset_complete, name="password_reset_complete"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views_evals.metrics, name="metrics"),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
]
