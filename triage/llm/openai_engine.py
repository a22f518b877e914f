"""The one place Tierdesk talks to OpenAI-compatible endpoints (OpenAI, Azure/Foundry, vLLM, Ollama).

Every way a call can fail ends as one ModelError whose message says what happened on the wire (timed out,
connection reset, a body cut short, the status and the provider's message) and how many requests the SDK
made, so an agent reading a ticket's model calls sees why a tier gave no answer.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import openai

from triage.llm.errors import ModelError

_clients: dict[tuple[str | None, str, float, int], openai.OpenAI] = {}
_lock = threading.Lock()
# The SDK retries these statuses itself; any other 4xx is the request's fault and retrying cannot help.
_TRANSIENT_4XX = (408, 409, 429)


@dataclass(frozen=True)
class RawReply:
    text: str
    tokens_in: int
    tokens_out: int
    latency_ms: int
    finish_reason: str = "stop"
    refusal: str = ""


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
    except openai.APIError as exc:
        raise _model_error(exc, timeout=timeout, max_retries=max_retries) from exc
    except json.JSONDecodeError as exc:
        # The SDK parses a 200 whose body is not JSON (a proxy's error page, say) by raising
        # json's decode error rather than one of its own.
        raise ModelError(f"malformed response: the body is not valid JSON ({exc})", permanent=False) from exc
    latency_ms = int((time.monotonic() - started) * 1000)
    usage = getattr(response, "usage", None)
    tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise ModelError("malformed response: the answer has no choices", permanent=False)
    message = choices[0].message
    return RawReply(
        text=message.content or "", tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=latency_ms,
        finish_reason=str(getattr(choices[0], "finish_reason", None) or ""),
        refusal=str(getattr(message, "refusal", None) or ""),
    )


def _tries(exc: openai.APIError, max_retries: int) -> str:
    """How many requests the SDK made, read from the retry count it sends with each one."""
    request = getattr(exc, "request", None)
    try:
        tries = int(request.headers["x-stainless-retry-count"]) + 1  # type: ignore[union-attr]
    except (AttributeError, KeyError, TypeError, ValueError):
        tries = max_retries + 1
    return "1 try" if tries == 1 else f"{tries} tries"


def _model_error(exc: openai.APIError, *, timeout: float, max_retries: int) -> ModelError:
    tries = _tries(exc, max_retries)
    if isinstance(exc, openai.APITimeoutError):
        return ModelError(f"timed out: no answer within {timeout:g}s ({tries})", permanent=False)
    if isinstance(exc, openai.APIConnectionError):
        # The SDK says only "Connection error."; what the transport raised says which.
        detail = re.sub(r"^\[Errno \d+\]\s*", "", str(exc.__cause__ or ""))[:300]
        if "complete message body" in detail or "incomplete chunked read" in detail:
            # h11 says how much arrived in a closing parenthesis: "(received 153 bytes, expected 307)".
            found = re.search(r"\(([^()]*)\)$", detail)
            return ModelError(f"truncated response: the connection closed before the body was complete "
                              f"({found.group(1) if found else detail}; {tries})", permanent=False)
        detail = detail or "could not reach the provider"
        return ModelError(f"connection failed: {detail} ({tries})", permanent=False)
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        detail = re.sub(r"^Error code: \d+( - )?", "", exc.message)[:300]
        said = f": {detail}" if detail else ""
        if code == 429:
            return ModelError(f"rate limited (HTTP 429){said} ({tries})", permanent=False, status=code)
        permanent = 400 <= code < 500 and code not in _TRANSIENT_4XX
        return ModelError(f"HTTP {code}{said} ({tries})", permanent=permanent, status=code)
    # Raised for bodies the SDK cannot parse, among others.
    return ModelError(f"malformed response: {exc}", permanent=False)


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
        except openai.APIError as exc:
            raise _model_error(exc, timeout=timeout, max_retries=max_retries) from exc
        except json.JSONDecodeError as exc:
            raise ModelError(f"malformed response: the body is not valid JSON ({exc})",
                             permanent=False) from exc
        data = sorted(getattr(response, "data", None) or [], key=lambda item: item.index)
        if len(data) != len(part):
            raise ModelError(f"asked for {len(part)} embeddings, got {len(data)}", permanent=False)
        vectors.extend(list(item.embedding) for item in data)
    return vectors
