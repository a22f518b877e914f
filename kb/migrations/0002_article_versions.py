from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def detect(text: str) -> str:
    import py3langid

    return str(py3langid.classify(text)[0]) if text.strip() else ""


def versions_for_existing(apps: Any, schema_editor: Any) -> None:
    # Articles written before versions existed get one version row: their current text. Earlier
    # versions were never stored, so a citation of one of them opens a clear "not kept" page.
    Article = apps.get_model("kb", "Article")
    ArticleVersion = apps.get_model("kb", "ArticleVersion")
    for article in Article.objects.all().iterator():
        if not article.language:
            article.language = detect(f"{article.title}\n{article.body}")
            article.save(update_fields=["language"])
        ArticleVersion.objects.create(
            article=article, version=article.version, title=article.title, body=article.body,
            language=article.language, status=article.status, published_at=article.updated_at,
            change_note="Version in place before version history",
        )


class Migration(migrations.Migration):
    dependencies = [
        ("kb", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="article",
            name="language",
            field=models.CharField(blank=True, max_length=8),
        ),
        migrations.AlterField(
            model_name="article",
            name="status",
            field=models.CharField(
                choices=[("draft", "Draft"), ("published", "Published"), ("retired", "Retired")],
                default="published", max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="ArticleVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("version", models.PositiveIntegerField()),
                ("title", models.CharField(max_length=300)),
                ("body", models.TextField()),
                ("language", models.CharField(blank=True, max_length=8)),
                ("status", models.CharField(
                    choices=[("draft", "Draft"), ("published", "Published"), ("retired", "Retired")],
                    default="draft", max_length=16,
                )),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("published_at", models.DateTimeField(blank=True, null=True)),
                ("change_note", models.CharField(blank=True, max_length=500)),
                ("article", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="versions",
                                              to="kb.article")),
                ("created_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                                 related_name="+", to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["article_id", "-version"]},
        ),
        migrations.AddConstraint(
            model_name="articleversion",
            constraint=models.UniqueConstraint(fields=("article", "version"),
                                               name="kb_articleversion_article_version_uniq"),
        ),
        migrations.RunPython(versions_for_existing, migrations.RunPython.noop),
    ]
