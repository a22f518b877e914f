"""The `openai` embedding provider for the knowledge base (settings.KB_EMBEDDING_BACKENDS)."""

from __future__ import annotations

import numpy as np

from kb.embeddings import EmbeddingConfig, EmbeddingError, check_vectors
from triage.llm import openai_engine
from triage.llm.errors import ModelError


class OpenAIEmbedder:
    def __init__(self, config: EmbeddingConfig) -> None:
        if not config.api_key:
            raise EmbeddingError(
                "KB_EMBEDDING_PROVIDER is openai but no key is set (KB_EMBEDDING_API_KEY or OPENAI_API_KEY)"
            )
        self.config = config

    def _embed(self, texts: list[str]) -> np.ndarray:
        config = self.config
        try:
            vectors = openai_engine.embed(
                model=config.model, base_url=config.base_url, api_key=config.api_key or "",
                timeout=config.timeout, max_retries=config.max_retries, texts=texts,
                dimensions=config.dim if config.send_dim else None, batch=config.batch,
            )
        except ModelError as exc:
            where = config.base_url or "api.openai.com"
            raise EmbeddingError(f"embedding with {config.model!r} at {where} failed: {exc}") from exc
        return check_vectors(vectors, count=len(texts), dim=config.dim, source=f"embedding model {config.model!r}")

    def passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.config.dim), dtype=np.float32)
        return self._embed(texts)

    def query(self, text: str) -> np.ndarray:
        return np.asarray(self._embed([text])[0])
