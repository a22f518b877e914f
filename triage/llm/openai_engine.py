"""The one place Tierdesk talks to OpenAI-compatible endpoints (OpenAI, Azure/Foundry, vLLM, Ollama)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import openai

from triage.llm.errors import ModelError

_clients: dict[tuple[str | None, str, float, int], openai.OpenAI] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class RawReply:
    text: str
    tokens_in: int
    tokens_out: int
    latency_ms: int


def _client(*, base_url: str | None, api_key: str, timeout: float, max_retries: int) -> openai.OpenAI:
    key = (base_url, api_key, timeout, max_retries)
    with _lock:
        if key not in _clients:
            # Retries live here, in the SDK (exponential backoff, honours Retry-After on 429/5xx);
            # Celery tasks do not retry model calls, so attempts never multiply.
            _clients[key] = openai.OpenAI(
                api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
            )
        return _clients[key]


def chat_json(
    *,
    model: str,
    base_url: str | None,
    api_key: str,
    timeout: float,
    max_retries: int,
    system: str,
    user: str,
    schema_name: str,
    schema: dict[str, Any],
) -> RawReply:
    client = _client(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
    started = time.monotonic()
    try:
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": schema, "strict": True},
            },
        )
    except openai.APITimeoutError as exc:
        raise ModelError(f"timed out after {timeout:g}s ({max_retries} retries)", permanent=False) from exc
    except openai.APIConnectionError as exc:
        raise ModelError(f"connection failed: {exc}", permanent=False) from exc
    except openai.RateLimitError as exc:
        raise ModelError(f"rate limited (429) after {max_retries} retries", permanent=False) from exc
    except openai.APIStatusError as exc:
        permanent = exc.status_code < 500
        raise ModelError(f"HTTP {exc.status_code}: {exc.message}", permanent=permanent) from exc
    except openai.APIError as exc:
        # Raised for bodies the SDK cannot parse, among others.
        raise ModelError(f"malformed response: {exc}", permanent=False) from exc
    latency_ms = int((time.monotonic() - started) * 1000)
    usage = getattr(response, "usage", None)
    tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise ModelError("response has no choices", permanent=False)
    message = choices[0].message
    refusal = getattr(message, "refusal", None)
    if refusal:
        raise ModelError(f"model refused: {refusal}", permanent=False)
    return RawReply(text=message.content or "", tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=latency_ms)


def embed(
    *,
    model: str,
    base_url: str | None,
    api_key: str,
    timeout: float,
    max_retries: int,
    texts: list[str],
    dimensions: int | None,
    batch: int,
) -> list[list[float]]:
    """Vectors for `texts`, in order, from `/v1/embeddings`, `batch` inputs per request."""
    client = _client(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
    vectors: list[list[float]] = []
    for start in range(0, len(texts), batch):
        part = texts[start : start + batch]
        extra: dict[str, Any] = {"dimensions": dimensions} if dimensions else {}
        try:
            response = client.embeddings.create(model=model, input=part, encoding_format="float", **extra)
        except openai.APITimeoutError as exc:
            raise ModelError(f"timed out after {timeout:g}s ({max_retries} retries)", permanent=False) from exc
        except openai.APIConnectionError as exc:
            raise ModelError(f"connection failed: {exc}", permanent=False) from exc
        except openai.RateLimitError as exc:
            raise ModelError(f"rate limited (429) after {max_retries} retries", permanent=False) from exc
        except openai.APIStatusError as exc:
            raise ModelError(f"HTTP {exc.status_code}: {exc.message}", permanent=exc.status_code < 500) from exc
        except openai.APIError as exc:
            raise ModelError(f"malformed response: {exc}", permanent=False) from exc
        data = sorted(getattr(response, "data", None) or [], key=lambda item: item.index)
        if len(data) != len(part):
            raise ModelError(f"asked for {len(part)} embeddings, got {len(data)}", permanent=False)
        vectors.extend(list(item.embedding) for item in data)
    return vectors
