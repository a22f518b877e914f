"""The rate limiter's Redis cache: one client per connection pool, and an atomic incr."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import caches


def _key() -> str:
    return f"test-cache-{uuid.uuid4().hex}"


def test_incr_counts_an_existing_key_and_keeps_its_expiry() -> None:
    cache, key = caches["ratelimit"], _key()
    assert cache.add(key, 1, 60)
    assert cache.incr(key) == 2
    assert cache.incr(key, 5) == 7
    assert cache.get(key) == 7
    assert 0 < cache._cache.get_client(write=True).ttl(cache.make_key(key)) <= 60


def test_incr_of_a_missing_key_is_a_value_error_and_stores_nothing() -> None:
    cache, key = caches["ratelimit"], _key()
    with pytest.raises(ValueError, match="not found"):
        cache.incr(key)
    assert cache.get(key) is None


def test_every_call_shares_one_client() -> None:
    client = caches["ratelimit"]._cache
    assert client.get_client() is client.get_client("any", write=True)
