"""Production settings from the environment: `check --deploy` is clean, and without a secret key of its own
the application refuses to start."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DATABASE_URL": "postgresql://tierdesk@db.internal:5432/tierdesk",  # never connected to by these checks
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "desk.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://desk.example.com",
    "TIERDESK_HTTPS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "TIERDESK_PROXY_SSL_HEADER": "X-Forwarded-Proto=https",
    "TIERDESK_TRUSTED_PROXIES": "1",
}
# Whatever the test run itself was given must not leak into the production process.
CLEARED = (
    "SECRET_KEY",
    "TIERDESK_DEBUG",
    "TIERDESK_REQUIRE_SECRET_KEY",
    "DATABASE_URL",
    "TIERDESK_DB_NAME",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "TIERDESK_TEST_FAST_HASHING",
)


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_production_settings() -> None:
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_what_is_missing_without_https_settings() -> None:
    plain_http = {k: v for k, v in PRODUCTION.items() if k not in ("TIERDESK_HTTPS", "SECURE_HSTS_PRELOAD")}
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **plain_http)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr, warning


def test_production_refuses_to_start_without_a_secret_key() -> None:
    keyless = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = run(["manage.py", "check"], **keyless)
    assert result.returncode != 0
    assert "SECRET_KEY must be set in the environment" in result.stderr


def test_the_https_switch_and_proxy_header_reach_django() -> None:
    script = (
        "import django, json, os; django.setup(); from django.conf import settings as s; print(json.dumps("
        "[s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT,"
        " s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, list(s.SECURE_PROXY_SSL_HEADER),"
        " s.SECRET_KEY == os.environ['SECRET_KEY']]))"
    )
    result = run(["-c", script], DJANGO_SETTINGS_MODULE="triage.settings", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == [False, True, True, True, 31536000, True, ["HTTP_X_FORWARDED_PROTO", "https"], True]


def test_a_malformed_setting_refuses_to_start_with_its_name() -> None:
    result = run(["manage.py", "check"], **{**PRODUCTION, "TIERDESK_RATE_API_KEY": "lots"})
    assert result.returncode != 0 and "TIERDESK_RATE_API_KEY" in result.stderr


def test_the_test_suites_fast_password_hashing_is_refused_in_a_deployment() -> None:
    result = run(["manage.py", "check"], **{**PRODUCTION, "TIERDESK_TEST_FAST_HASHING": "1"})
    assert result.returncode != 0 and "TIERDESK_TEST_FAST_HASHING" in result.stderr
    script = ("import django; django.setup(); from django.conf import settings as s; "
              "print(s.PASSWORD_HASHERS[0].rsplit('.', 1)[-1])")
    plain = run(["-c", script], DJANGO_SETTINGS_MODULE="triage.settings")
    fast = run(["-c", script], DJANGO_SETTINGS_MODULE="triage.settings", TIERDESK_TEST_FAST_HASHING="1")
    assert (plain.stdout.split()[-1], fast.stdout.split()[-1]) == ("PBKDF2PasswordHasher", "MD5PasswordHasher"), (
        plain.stderr + fast.stderr)


def test_a_job_time_limit_beyond_the_brokers_visibility_timeout_is_refused() -> None:
    result = run(["manage.py", "check"], **{**PRODUCTION, "TIERDESK_JOB_TIME_LIMIT_S": "3590"})
    assert result.returncode != 0 and "TIERDESK_JOB_TIME_LIMIT_S must be positive" in result.stderr
