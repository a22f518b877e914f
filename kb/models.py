from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField


class Article(models.Model):
    class Status(models.TextChoices):
        PUBLISHED = "published"
        RETIRED = "retired"

    # Stable external identifier (a path in kb/, an import id); re-imports update in place.
    slug = models.CharField(max_length=255, unique=True)
    title = models.CharField(max_length=300)
    body = models.TextField()
    source = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PUBLISHED)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="chunks")
    article_version = models.PositiveIntegerField()
    ordinal = models.PositiveIntegerField()
    heading = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    search = SearchVectorField(null=True)
    embedding = VectorField(dimensions=settings.KB_EMBEDDING_DIM)

    class Meta:
        ordering = ["article_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["article", "ordinal"], name="kb_chunk_article_ordinal_uniq"),
        ]
        indexes = [
            GinIndex(fields=["search"], name="kb_chunk_search_gin"),
            HnswIndex(
                name="kb_chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]
