import pgvector.django.vector
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("kb", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="chunk",
            name="language",
            field=models.CharField(blank=True, max_length=8),
        ),
        migrations.AddField(
            model_name="chunk",
            name="embedding_model",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="chunk",
            name="embedding_dim",
            field=models.PositiveIntegerField(null=True),
        ),
        # The column keeps its dimension in the database (HNSW needs one) but not in the model's state:
        # the re-embedding job owns it, so changing KB_EMBEDDING_DIM never shows up as a pending migration.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="chunk",
                    name="embedding",
                    field=pgvector.django.vector.VectorField(null=True),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE kb_chunk ALTER COLUMN embedding DROP NOT NULL",
                    "ALTER TABLE kb_chunk ALTER COLUMN embedding SET NOT NULL",
                ),
            ],
        ),
        # Chunks indexed before this migration were embedded by the bundled model and stemmed as English.
        migrations.RunSQL(
            "UPDATE kb_chunk SET embedding_model = 'local:multilingual-e5-small', embedding_dim = 384, "
            "language = 'en'",
            migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=models.Index(fields=["embedding_model", "embedding_dim"], name="kb_chunk_embedding_model_idx"),
        ),
        migrations.CreateModel(
            name="ReembedJob",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("status", models.CharField(choices=[("queued", "Queued"), ("running", "Running"), ("done", "Done"),
                                                     ("failed", "Failed")], default="queued", max_length=16)),
                ("provider", models.CharField(max_length=50)),
                ("model", models.CharField(max_length=200)),
                ("dimension", models.PositiveIntegerField()),
                ("batch_size", models.PositiveIntegerField()),
                ("total", models.PositiveIntegerField(default=0)),
                ("done", models.PositiveIntegerField(default=0)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("worker_pid", models.PositiveIntegerField(null=True)),
                ("error", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(null=True)),
                ("heartbeat_at", models.DateTimeField(null=True)),
                ("finished_at", models.DateTimeField(null=True)),
            ],
            options={"ordering": ["-created_at", "-id"]},
        ),
    ]
