"""The embedding provider is a setting: the bundled model, or any OpenAI-compatible /v1/embeddings endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from kb.embeddings import EmbeddingError, embed_passages, embedding_config
from kb.models import Chunk
from kb.selectors import kb_search
from kb.services import article_upsert
from tests.support.scripted_openai import Reply, ScriptedOpenAI

pytestmark = pytest.mark.django_db


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as scripted:
        yield scripted


def openai_settings(server: ScriptedOpenAI, *, dim: int = 384, **extra: object) -> override_settings:
    return override_settings(
        KB_EMBEDDING_PROVIDER="openai", KB_EMBEDDING_MODEL="scripted-embed", KB_EMBEDDING_BASE_URL=server.base_url,
        KB_EMBEDDING_API_KEY="sk-test", KB_EMBEDDING_DIM=dim, KB_EMBEDDING_MAX_RETRIES=0, KB_EMBEDDING_BATCH=2,
        **extra,
    )


def test_articles_are_embedded_through_the_endpoint_and_record_the_model(server: ScriptedOpenAI) -> None:
    with openai_settings(server):
        article_upsert(slug="returns", title="Returns", body="Returns are free within thirty days.\n\n"
                       "## Labels\n\nPrint the prepaid label.\n\n## Refunds\n\nRefunds reach your card.")
        article_upsert(slug="password", title="Password reset", body="Use the forgot password link.")
        results = kb_search(query="forgot password link", k=2)
    embedding_calls = [r for r in server.requests if r["path"] == "/v1/embeddings"]
    # Three chunks of the first article in batches of two, one chunk of the second, then the query.
    assert [len(r["json"]["input"]) for r in embedding_calls] == [2, 1, 1, 1]
    assert all(r["json"]["model"] == "scripted-embed" and r["json"]["dimensions"] == 384 for r in embedding_calls)
    assert embedding_calls[0]["authorization"] == "Bearer sk-test"
    assert set(Chunk.objects.values_list("embedding_model", "embedding_dim")) == {("openai:scripted-embed", 384)}
    assert results[0].article_slug == "password" and results[0].vector_rank == 1


def test_a_failing_endpoint_is_a_clear_error(server: ScriptedOpenAI) -> None:
    server.embedding_replies.append(Reply(status=401, body={"error": {"message": "bad key"}}))
    with openai_settings(server), pytest.raises(EmbeddingError, match=r"scripted-embed.*HTTP 401"):
        embed_passages(["hello"])


def test_vectors_of_the_wrong_size_are_refused(server: ScriptedOpenAI) -> None:
    with openai_settings(server, dim=32, KB_EMBEDDING_SEND_DIM=False), \
            pytest.raises(EmbeddingError, match="64-dimensional vectors but KB_EMBEDDING_DIM is 32"):
        embed_passages(["hello"])
    assert "dimensions" not in server.requests[-1]["json"]


def test_search_falls_back_to_full_text_when_the_endpoint_is_down(server: ScriptedOpenAI) -> None:
    with openai_settings(server):
        article_upsert(slug="password", title="Password reset", body="Use the forgot password link.")
        server.embedding_replies.append(Reply(status=400, body={"error": {"message": "down"}}))
        [top] = kb_search(query="forgot password", k=1)
    assert top.article_slug == "password" and top.vector_rank is None and top.similarity == 0


def test_bad_settings_are_refused_by_name() -> None:
    with override_settings(KB_EMBEDDING_PROVIDER="cohere"), pytest.raises(ImproperlyConfigured, match="local"):
        embedding_config()
    with override_settings(KB_EMBEDDING_DIM=768), pytest.raises(ImproperlyConfigured, match="384"):
        embedding_config()
    with override_settings(KB_EMBEDDING_MODEL="bge-m3"), pytest.raises(ImproperlyConfigured, match="one model"):
        embedding_config()
    with override_settings(KB_EMBEDDING_PROVIDER="openai", KB_EMBEDDING_DIM=3072), \
            pytest.raises(ImproperlyConfigured, match="2000"):
        embedding_config()
    with override_settings(KB_EMBEDDING_PROVIDER="openai", KB_EMBEDDING_API_KEY=None), \
            pytest.raises(EmbeddingError, match="no key"):
        embed_passages(["x"])
