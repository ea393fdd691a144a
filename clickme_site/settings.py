"""ClickMe settings: one file, every value from the environment, defaults safe for production.

Convenience for development comes only from a `.env` file (see `.env.example`), never from
the defaults here. A malformed value stops the process at start with a message naming the
variable, because a typo in production should fail loudly rather than fall back silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env", overwrite=False)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    """Read a strict boolean: anything but 1/0, true/false, yes/no, on/off is an error."""
    raw = env.str(name, default="").strip().lower()
    if raw == "":
        return default
    if raw not in _TRUE | _FALSE:
        raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")
    return raw in _TRUE


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """Read an integer no smaller than `minimum`."""
    raw = env.str(name, default="").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_url(name: str, default: str, schemes: set[str]) -> str:
    """Read a URL whose scheme is one of `schemes`; empty means unset."""
    raw = env.str(name, default="").strip() or default
    if raw and urlsplit(raw).scheme not in schemes:
        expected = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"{name} must be a URL with scheme {expected}, got {raw!r}")
    return raw


# --- Core --------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#core-settings
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
ROOT_URLCONF = "clickme_site.urls"
WSGI_APPLICATION = "clickme_site.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "games",
    "maps",
    "evolution",
]
MIDDLEWARE = [
    "clickme_site.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so that it sees a view's exceptions first: a database outage is a 503 (clickme_site/errors.py).
    "clickme_site.errors.DatabaseUnavailableMiddleware",
]
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
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------------
# Unset = a SQLite file (the embedded default); a postgres:// URL = Postgres.
DATABASE_URL = env_url(
    "DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'clickme.sqlite3'}", {"sqlite", "postgres", "postgresql"}
)
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60)
# A connection kept from an earlier request is checked before reuse, so a restarted Postgres
# costs a reconnect, not a failed request (docs/operations.md, "Faults").
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Postgres: a connection pool per process (psycopg 3), so that a burst of players (the threaded
# development server opens a thread per request) waits for one of DATABASE_POOL_SIZE connections
# instead of exhausting the server's max_connections; a connection comes back to the pool at the
# end of every request. A wait past DATABASE_POOL_TIMEOUT seconds answers 503 + Retry-After.
# DATABASE_POOL_SIZE=0 turns the pool off (CONN_MAX_AGE then keeps one connection per thread).
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 16)
# Seconds a client is told to wait (Retry-After) when the database cannot be reached.
DATABASE_RETRY_AFTER_S = env_int("DATABASE_RETRY_AFTER_S", 5, minimum=1)
if DATABASES["default"]["ENGINE"].endswith("postgresql") and DATABASE_POOL_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django must not
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 10, minimum=1),
        "max_idle": 60,  # idle connections above min_size are closed after a minute
    }  # with CONN_HEALTH_CHECKS, Django has the pool check each connection it hands out
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # SQLite serialises writers; a busy timeout lets the web process and in-process tasks
    # queue behind each other instead of failing with "database is locked". IMMEDIATE: a
    # deferred transaction that reads and then writes (store_clicks) cannot wait for the write
    # lock, SQLite fails it at once; taking the lock at BEGIN makes the timeout apply.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}

# --- Files -------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "var" / "media")
EXPORT_ROOT = env.path("EXPORT_ROOT", default=BASE_DIR / "var" / "exports")
# An export covers rounds finalised up to this many seconds before it starts: a round stamped just
# before the start but committed just after it is then the next increment's, never nobody's.
EXPORT_SETTLE_SECONDS = env_int("EXPORT_SETTLE_SECONDS", 10, minimum=0)
# Per researcher, through the API and the dashboard (maps/export_limits.py): exports unfinished at once, and
# started in any 24 hours; 0 = no limit. Exports older than the retention period lose their files (0 = kept).
EXPORT_MAX_RUNNING = env_int("EXPORT_MAX_RUNNING", 2, minimum=0)
EXPORT_MAX_PER_DAY = env_int("EXPORT_MAX_PER_DAY", 20, minimum=0)
EXPORT_RETENTION_DAYS = env_int("EXPORT_RETENTION_DAYS", 30, minimum=0)
# The partner's generations (docs/evolution.md): their images, checkpoints and logs, on storage the model
# server reads too (it loads a promoted checkpoint by this path); how long one may train and evaluate.
EVOLUTION_ROOT = env.path("EVOLUTION_ROOT", default=BASE_DIR / "var" / "evolution")
EVOLUTION_STEP_TIMEOUT_S = env_int("EVOLUTION_STEP_TIMEOUT_S", 6 * 3600, minimum=1)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Uploads and imports: Pillow refuses images above this many pixels (decompression bombs).
IMAGE_MAX_PIXELS = env_int("IMAGE_MAX_PIXELS", 40_000_000, minimum=1)
IMAGE_MAX_BYTES = env_int("IMAGE_MAX_BYTES", 50 * 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024, minimum=1024)
# A researcher's image-set upload (a zip, docs/running-a-study.md): its size, and how many files it may hold.
IMAGE_SET_ZIP_MAX_BYTES = env_int("IMAGE_SET_ZIP_MAX_BYTES", 500 * 1024 * 1024, minimum=1024)
IMAGE_SET_ZIP_MAX_FILES = env_int("IMAGE_SET_ZIP_MAX_FILES", 20_000, minimum=1)

# --- Security (secure unless DEBUG; each switch overridable) ------------------------------
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Behind a TLS-terminating proxy (docker compose, a load balancer) that sets X-Forwarded-Proto.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Celery and cache ---------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
REDIS_URL = env_url("REDIS_URL", "", {"redis", "rediss"})
# Development and tests only: tasks run in the process that enqueues them, after its commit (no
# broker, no worker). On by default exactly when there is no REDIS_URL; clickme_site/tasks_enqueue.py
# keeps what such a task raises away from the service that enqueued it.
TASKS_IN_PROCESS = env_bool("TASKS_IN_PROCESS", not REDIS_URL)
if not TASKS_IN_PROCESS and not REDIS_URL:
    raise ImproperlyConfigured("TASKS_IN_PROCESS=0 needs a broker: set REDIS_URL")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = TASKS_IN_PROCESS
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60 if CELERY_TASK_TIME_LIMIT > 120 else None
# The visibility timeout must outlast any countdown or retry delay, or Redis redelivers
# a task that is merely waiting (Celery docs, "Redis: Visibility timeout").
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A web request that enqueues must not hang on a dead broker: fail fast, the sweep catches up.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# A counted round's map build waits this long, and the image's rounds counted meanwhile share it
# (maps/pending_builds.py); 0, the default, builds after every round. Off by default: with builds
# held for later, a Redis outage crashed the Celery worker (docs/maps-and-reliability.md).
MAP_BUILD_COALESCE_S = env_int("MAP_BUILD_COALESCE_S", 0)
CELERY_BEAT_SCHEDULE = {
    "sweep-unscored-rounds": {
        "task": "games.tasks.sweep_unscored_rounds_task",
        "schedule": float(env_int("SCORING_SWEEP_EVERY_S", 60, minimum=1)),
    },
    "sweep-stale-maps": {  # maps whose build task was lost (maps/sweep.py)
        "task": "maps.tasks.sweep_stale_maps_task",
        "schedule": float(env_int("MAP_SWEEP_EVERY_S", 60, minimum=1)),
    },
    "delete-expired-exports": {"task": "maps.tasks.delete_expired_exports_task", "schedule": 3600.0},
    "start-due-generations": {  # starts `evolve_partner` processes, never trains in the worker (docs/evolution.md)
        "task": "evolution.tasks.start_due_generations_task",
        "schedule": float(env_int("EVOLUTION_SWEEP_EVERY_S", 300, minimum=1)),
    },
}
CACHES: dict[str, Any] = {
    "default": (
        # Short socket timeouts: a Redis that is down or stalled must fail fast (the rate limiter
        # then counts in-process, games/ratelimit.py), never hold a request.
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}


# --- Rate limits on the game API (games/ratelimit.py) ---------------------------------------
def rate(name: str, raw: str) -> tuple[int, int]:
    """Parse a limit "N/S": at most N requests per S-second window; N = 0 turns the limit off."""
    raw = raw.strip()
    count, _, seconds = raw.partition("/")
    if not (count.isdigit() and seconds.isdigit() and int(seconds) > 0):
        raise ImproperlyConfigured(f"{name} must look like 100/10 (requests per seconds), got {raw!r}")
    return int(count), int(seconds)


# Per participant; an honest browser stays far below (about 1 upload per second, a round every few s).
GAME_RATE_LIMITS = {
    "clicks": rate("RATE_LIMIT_CLICKS", env.str("RATE_LIMIT_CLICKS", default="100/10")),
    "guesses": rate("RATE_LIMIT_GUESSES", env.str("RATE_LIMIT_GUESSES", default="50/10")),
    "rounds": rate("RATE_LIMIT_ROUNDS", env.str("RATE_LIMIT_ROUNDS", default="10/10")),
    "other": rate("RATE_LIMIT_OTHER", env.str("RATE_LIMIT_OTHER", default="100/10")),
}
# Per client address, the participant limits times this (a lab or school shares one address).
GAME_RATE_LIMIT_ADDRESS_FACTOR = env_int("RATE_LIMIT_ADDRESS_FACTOR", 20, minimum=1)
# Admission at a study's door (games/admission.py, docs/operations.md "A busy day"): at most this
# many new players a minute, the rest a "busy, try again in a minute" page; 0 lets everyone in.
# Players already in keep playing: shedding new arrivals loses nobody's clicks.
ADMISSION_PLAYERS_PER_MINUTE = env_int("ADMISSION_PLAYERS_PER_MINUTE", 0, minimum=0)

# --- Model server -------------------------------------------------------------------------
MODEL_SERVER_URL = env_url("MODEL_SERVER_URL", "http://127.0.0.1:8001", {"http", "https"})
MODEL_SERVER_TIMEOUT_MS = env_int("MODEL_SERVER_TIMEOUT_MS", 1500, minimum=1)
# The bearer token of the model server's repository endpoints (load, activate, unload): the same .env
# feeds the model server. Required when DEBUG is off (system check clickme.E001, games/checks.py).
MODEL_SERVER_ADMIN_TOKEN = env.str("MODEL_SERVER_ADMIN_TOKEN", default="").strip()

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, size- and depth-checked before parsing (games/api_input.py): any other body is 415.
    "DEFAULT_PARSER_CLASSES": ["games.api_input.StrictJSONParser"],
    "EXCEPTION_HANDLER": "games.api_input.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "maps.pagination.StrictPageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "maps.schema.ResearcherApiSchema",  # every error answer documented too
    # Which address the rate limits count: the proxy's X-Forwarded-For entry behind one, else the peer.
    "NUM_PROXIES": 1 if BEHIND_TLS_PROXY else 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ClickMe researcher API",
    "VERSION": "1.0.0",
    # What Django's path converters really match, so the schema promises no URL that is not routed.
    "PATH_CONVERTER_OVERRIDES": {
        "slug": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
        "int": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "path": {"type": "string", "minLength": 1},
    },
}

# --- Auth ---------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "maps:login"  # researchers sign in to the dashboard; staff use the admin

# --- Logging ------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
