from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField


class Article(models.Model):
    class Audience(models.TextChoices):
        # Help-centre text a customer may read: a draft may quote it and cite it.
        PUBLIC = "public"
        # Procedures and policy for agents: shown beside the draft and given to a model as guidance, never
        # quoted to the customer (the internal_text gate holds a draft that repeats it).
        INTERNAL = "internal"

    class Status(models.TextChoices):
        DRAFT = "draft"  # written, never published: not retrievable
        PUBLISHED = "published"  # retrievable
        RETIRED = "retired"  # not retrievable; kept for history and for drafts that cited it

    # Stable external identifier (a path in kb/, an import id); re-imports update in place.
    slug = models.CharField(max_length=255, unique=True)
    title = models.CharField(max_length=300)
    body = models.TextField()
    source = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PUBLISHED)
    audience = models.CharField(max_length=10, choices=Audience.choices, default=Audience.PUBLIC)
    # The version whose title and body are above and in the chunks (the live one once published).
    # A newer draft waits in ArticleVersion until it is published.
    version = models.PositiveIntegerField(default=1)
    # ISO 639-1 code, detected when not given; retrieval picks its full-text configuration from it.
    language = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class ArticleVersion(models.Model):
    """One saved state of an article; the text is never changed once written, so a citation of
    (article, version) always opens the words that were cited."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=300)
    body = models.TextField()
    language = models.CharField(max_length=8, blank=True)
    # draft: never published; published: is or was live; retired: was live when the article was retired.
    status = models.CharField(max_length=16, choices=Article.Status.choices, default=Article.Status.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    change_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["article_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["article", "version"], name="kb_articleversion_article_version_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.title} v{self.version}"


class Chunk(models.Model):
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="chunks")
    article_version = models.PositiveIntegerField()
    ordinal = models.PositiveIntegerField()
    heading = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    # ISO 639-1; the full-text vector was built with this language's text-search configuration.
    language = models.CharField(max_length=8, blank=True)
    search = SearchVectorField(null=True)
    # The column's dimension is the deployment's (KB_EMBEDDING_DIM), set by the re-embedding job
    # (kb/reembed.py), which alters it and rebuilds the HNSW index when the setting changes.
    embedding = VectorField(null=True)
    # "provider:model" and the dimension that produced `embedding`; empty while the chunk awaits re-embedding.
    embedding_model = models.CharField(max_length=200, blank=True)
    embedding_dim = models.PositiveIntegerField(null=True)

    class Meta:
        ordering = ["article_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["article", "ordinal"], name="kb_chunk_article_ordinal_uniq"),
        ]
        indexes = [
            GinIndex(fields=["search"], name="kb_chunk_search_gin"),
            models.Index(fields=["embedding_model", "embedding_dim"], name="kb_chunk_embedding_model_idx"),
            HnswIndex(
                name="kb_chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"chunk {self.ordinal} of article {self.article_id} v{self.article_version}"


class ReembedJob(models.Model):
    """Re-embedding every chunk whose vector another model or dimension produced; one runs at a time."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=200)
    dimension = models.PositiveIntegerField()
    batch_size = models.PositiveIntegerField()
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    # How many times a worker took it up: more than one means it resumed after an interruption.
    attempts = models.PositiveIntegerField(default=0)
    worker_pid = models.PositiveIntegerField(null=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    heartbeat_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"re-embed job {self.pk} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in {self.Status.QUEUED, self.Status.RUNNING}

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, int(100 * self.done / self.total))
