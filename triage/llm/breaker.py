"""A circuit breaker per tier, shared by every worker through Redis.

After FAILURES provider failures within WINDOW seconds the tier is open for OPEN_FOR seconds: routing
treats it as unavailable and its traffic follows the contract's fallback instead of piling more
requests onto a provider that is down.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from django.conf import settings

from triage.vocabulary import TIERS

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_client: Any = None


def _redis() -> Any:
    global _client
    with _lock:
        if _client is None:
            url = settings.REDIS_URL
            if url.startswith("redis+socket://"):
                url = "unix://" + url.removeprefix("redis+socket://").split("?", 1)[0]
            _client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        return _client


def _keys(tier: str) -> tuple[str, str]:
    return f"tierdesk:breaker:{tier}:failures", f"tierdesk:breaker:{tier}:open"


def record(tier: str, *, ok: bool) -> None:
    failures, opened = _keys(tier)
    try:
        client = _redis()
        if ok:
            client.delete(failures)
            return
        count = int(client.incr(failures))
        if count == 1:
            # The window starts at the first failure (EXPIRE … NX needs Redis 7; the embedded one is 6.2).
            client.expire(failures, settings.BREAKER_WINDOW_S)
        if count >= settings.BREAKER_FAILURES:
            client.set(opened, "1", ex=settings.BREAKER_OPEN_S)
            client.delete(failures)
            logger.warning("circuit breaker for the %s tier opened for %ss", tier, settings.BREAKER_OPEN_S)
    except redis.RedisError:
        # The breaker protects providers; losing it must not stop triage.
        logger.warning("circuit breaker state unavailable", exc_info=True)


def open_tiers() -> frozenset[str]:
    try:
        client = _redis()
        values = client.mget([_keys(t)[1] for t in TIERS])
    except redis.RedisError:
        logger.warning("circuit breaker state unavailable", exc_info=True)
        return frozenset()
    return frozenset(t for t, v in zip(TIERS, values, strict=True) if v)


def reset(tier: str) -> None:
    _redis().delete(*_keys(tier))
