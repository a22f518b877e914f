from __future__ import annotations

from django.urls import path

from kb import views

urlpatterns = [
    path("", views.article_list, name="kb_list"),
    path("new", views.article_new, name="kb_new"),
    path("preview", views.article_preview, name="kb_preview"),
    path("import", views.article_import, name="kb_import"),
    path("gaps", views.gap_list, name="kb_gaps"),
    path("<int:article_id>/", views.article_history, name="kb_history"),
    path("<int:article_id>/edit", views.article_edit, name="kb_edit"),
    path("<int:article_id>/publish", views.article_publish, name="kb_publish"),
    path("<int:article_id>/retire", views.article_retire, name="kb_retire"),
    path("<int:article_id>/restore", views.article_restore, name="kb_restore"),
    path("<int:article_id>/v/<int:version>", views.article_version, name="kb_version"),
]
