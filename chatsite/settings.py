"""Settings for the chat site: everything an operator changes comes from the environment.

See README.md ("Configuration") for the variables and their defaults.
"""

import os
import re
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from redis.connection import parse_url as parse_redis_url

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool = False) -> bool:
    """Read a boolean variable; anything but the usual spellings stops start-up."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use 1/true/yes/on or 0/false/no/off."
    )


def env_list(name: str, default: str) -> list[str]:
    """Read a comma-separated list, dropping blanks."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


DEBUG = env_bool("DJANGO_DEBUG")

# `make run` and the test suite set CHATSITE_DEV=1 so a fresh clone works without a secret;
# a production worker without DJANGO_SECRET_KEY refuses to start.
_DEV = DEBUG or env_bool("CHATSITE_DEV") or "pytest" in sys.modules
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not _DEV:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
if "*" in ALLOWED_HOSTS:
    # AllowedHostsOriginValidator treats "*" as "accept any Origin": that would let any web
    # page open sockets with a visitor's cookies.
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must name hosts; '*' is not allowed.")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "accounts",
    "rooms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chatsite.middleware.ContentSecurityPolicyMiddleware",
    # Last, as axes documents: it turns a throttled sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

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
                "rooms.context_processors.chat_protocol",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or "sqlite:///" + str(BASE_DIR / "db.sqlite3"),
        # Persistent connections: the WebSocket consumer's database calls would otherwise
        # each open a new one.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers queue for the lock instead of failing with "database is locked"; IMMEDIATE takes
    # the write lock at BEGIN so two posters cannot deadlock upgrading their read locks.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory: browser and live-server tests share the database across threads.
    DATABASES["default"]["TEST"] = {"NAME": f"{DATABASES['default']['NAME']}.test"}

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, minus the health check of a connection busy a moment ago (see there).
    DATABASES["default"]["ENGINE"] = "chatsite.postgresql"
    # A stopped or unreachable server must fail requests (and /healthz) fast, not hang them.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 3

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "").strip()


def redis_database(url: str) -> int:
    """The database number of a Redis URL as redis-py reads it (`/2` or `?db=2`), else 0."""
    if not url:
        return 0
    try:
        # With several servers (comma-separated), the first one's.
        return int(parse_redis_url(url.split(",")[0].strip()).get("db", 0))
    except ValueError as exc:
        raise ImproperlyConfigured(f"REDIS_URL={url!r} is not a Redis URL: {exc}") from None


# Prefix of every Redis key and pub/sub channel the site uses: channel layer, presence, rate
# limits and cache. Redis pub/sub ignores the database number (stack fact 11), so by default
# the prefix names it: sites on redis://host/1 and redis://host/2 never hear each other.
REDIS_KEY_PREFIX = os.environ.get("CHATSITE_LAYER_PREFIX") or (
    f"chatsite-db{redis_database(REDIS_URL)}"
)
# The pub/sub layer starts channel names with the prefix, and channels accepts only these
# characters in names shorter than 100 (the prefix plus 41 for "specific.<uuid hex>").
if not re.fullmatch(r"[A-Za-z0-9._-]{1,50}", REDIS_KEY_PREFIX):
    raise ImproperlyConfigured(
        f"CHATSITE_LAYER_PREFIX={REDIS_KEY_PREFIX!r}: use 1 to 50 ASCII letters, digits, "
        "'.', '-' or '_'."
    )

# Which channels-redis layer carries the broadcast (docs/scaling.md compares them). `pubsub`
# costs a quarter less worker CPU per event; what it can lose silently (a subscription that
# lapses when Redis restarts or drops a slow subscriber) the hubs' numbering notices, and the
# sockets resync (rooms/fanout.py).
CHANNEL_LAYER_BACKENDS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
_layer_kind = os.environ.get("CHATSITE_CHANNEL_LAYER", "pubsub")
if _layer_kind not in CHANNEL_LAYER_BACKENDS:
    raise ImproperlyConfigured(
        f"CHATSITE_CHANNEL_LAYER must be one of {sorted(CHANNEL_LAYER_BACKENDS)}."
    )

if REDIS_URL:
    _layer_config: dict[str, object] = {
        # socket_timeout=None: a finite read timeout races the layer's blocking reads and
        # drops idle sockets (redis-py 8 made it 5 s by default; stack fact 1).
        "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
        "prefix": REDIS_KEY_PREFIX,
    }
    if _layer_kind == "core":
        _layer_config.update(
            {
                # One channel per worker receives every event (rooms/fanout.py), so its queue
                # must hold bursts; memberships of dead workers expire after group_expiry,
                # live workers renew theirs every HUB_REFRESH_SECONDS.
                "capacity": 20000,
                "expiry": 60,
                "group_expiry": 120,
            }
        )
    CHANNEL_LAYERS = {
        "default": {"BACKEND": CHANNEL_LAYER_BACKENDS[_layer_kind], "CONFIG": _layer_config}
    }
    CACHES = {
        "default": {
            # django-redis rather than Django's RedisCache: it can turn a Redis outage into
            # cache misses (logged) instead of exceptions, so `cached_db` sessions fall back to
            # the database and pages and sign-in keep working (contract §4). The timeouts bound
            # what a paused or unreachable Redis costs each cache call (docs/deploy.md).
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
            "OPTIONS": {
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    # Every worker reads the same sessions: the database, with Redis in front.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 20000, "expiry": 60},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Axes first: it refuses a throttled sign-in before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if _DEV
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Tests and `make run` serve from the source folders without collectstatic.
WHITENOISE_USE_FINDERS = _DEV
if _DEV:
    warnings.filterwarnings("ignore", message="No directory at", module="whitenoise.base")

# Behind a TLS-terminating proxy (docs/deploy.md).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not _DEV)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# includeSubDomains binds every subdomain to HTTPS, and preload does so for months beyond
# (until browsers' built-in lists drop the domain): an operator turns them on knowingly, and
# leaving them unset is that decision already made. So `check --deploy` (the production gate)
# stays clean without them; set to anything, even 0, they are the check's to judge again.
SILENCED_SYSTEM_CHECKS = [
    check
    for check, variable in (
        ("security.W005", "DJANGO_HSTS_INCLUDE_SUBDOMAINS"),
        ("security.W021", "DJANGO_HSTS_PRELOAD"),
    )
    if variable not in os.environ
]
# The load balancer probes workers over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"once_per_minute": {"()": "chatsite.logging_filters.OncePerMinute"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        # Axes logs every sign-in at INFO; failures and lockouts are WARNINGs.
        "axes": {"level": "WARNING"},
        # While Redis is away every cache call fails (and is ignored): one traceback a minute.
        "django_redis.cache": {"filters": ["once_per_minute"]},
    },
}

# The fast paths under daphne (chatsite/server/): on when the installed versions are the tested
# ones; 0 runs the site on plain ASGI (the limits stay on).
SERVER_TUNING = env_bool("CHATSITE_SERVER_TUNING", True)

# Chat limits: the numbers of the contract live here once.
CHAT = {
    "MAX_BODY_CHARS": 4000,
    "MAX_FRAME_BYTES": 64 * 1024,
    "MAX_REF_CHARS": 64,
    "HISTORY_DEFAULT": 50,
    "HISTORY_MAX": 100,
    "RATE_PER_SECOND": float(os.environ.get("CHATSITE_RATE_PER_SECOND", "5")),
    "RATE_BURST": env_int("CHATSITE_RATE_BURST", 20),
    "ABUSE_FRAMES": 100,
    "ABUSE_WINDOW_SECONDS": 10,
    "PRESENCE_TTL_SECONDS": 30,
    "PRESENCE_HEARTBEAT_SECONDS": 10,
    "HUB_REFRESH_SECONDS": 30,
    # A hub with nothing to send says how far it got this often (rooms/fanout.py).
    "HUB_BEAT_SECONDS": 2,
    # What one user or socket may cost a worker (docs/security.md has the table).
    # No server frame is larger than this (daphne's own cap on a WebSocket message).
    "MAX_SERVER_FRAME_BYTES": 1024 * 1024,
    # Frames a socket may have waiting for the worker before it stops reading that socket.
    "INPUT_QUEUE_FRAMES": 8,
    # Bytes pushed to a socket whose client is not reading before it is closed with 4013.
    "SOCKET_BACKLOG_BYTES": env_int("CHATSITE_SOCKET_BACKLOG_BYTES", 1024 * 1024),
    # How long a socket closed with 4013 has to read its close before it is dropped.
    "BACKLOG_CLOSE_SECONDS": 10,
    # Open sockets per user across every worker; the next one is closed with 4029.
    "SOCKETS_PER_USER": env_int("CHATSITE_SOCKETS_PER_USER", 32),
    # Frames one socket may send per second (burst); faster ones wait their turn.
    "SOCKET_FRAMES_PER_SECOND": 50,
    "SOCKET_FRAME_BURST": 200,
    # `history` and `read` per user, across tabs and workers; faster ones wait their turn.
    "QUERIES_PER_SECOND": 20,
    "QUERIES_BURST": 100,
    # `typing` is relayed at most once per this many seconds per user and room.
    "TYPING_INTERVAL_SECONDS": 2,
    # Rooms a user may belong to (a `hello` lists them all and must stay under 1 MiB), and
    # make within an hour (every public room is listed for everyone).
    "ROOMS_PER_USER": 500,
    "ROOMS_CREATED_PER_HOUR": env_int("CHATSITE_ROOMS_PER_HOUR", 20),
    # Members listed by name in `joined` and on a room's page.
    "MEMBERS_LISTED": 1000,
    # The HTTP fallback (rooms/streams.py): a stream silent for this long gets a comment (so
    # every stream hears from its worker at least every twice this) to keep proxies from
    # closing it;
    # a POST carries at most this many frames and bytes, and a stream holds at most two such
    # batches of posted frames not yet handled (past them, 429).
    "STREAM_KEEPALIVE_SECONDS": 5,
    "STREAM_BATCH_FRAMES": 50,
    "STREAM_POST_BYTES": 1024 * 1024,
    # How long a POST waits for the worker holding its stream to take the frames.
    "STREAM_ANSWER_SECONDS": 5,
}

# Sign-in limits (contract §4; docs/security.md has the table): this many failed sign-ins within
# the cool-off lock a username (from any address) or an address (for any username) until the
# cool-off has passed or staff delete the attempts in the admin (Axes › Access attempts).
SIGN_IN = {
    "FAILURES_PER_USERNAME": 10,
    "FAILURES_PER_ADDRESS": 30,
    "COOL_OFF_MINUTES": 15,
}
# django-axes applies them. Its database handler, not the cache one: every worker shares the
# table, and the cache lives in Redis while sign-in must keep working without Redis.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# Axes has one limit for both parameters; this picks 10 or 30 per sign-in (see there).
AXES_FAILURE_LIMIT = "accounts.throttle.failure_limit"
AXES_COOLOFF_TIME = timedelta(minutes=SIGN_IN["COOL_OFF_MINUTES"])
# Attempts during a lock, the owner's right password included, do not make it last longer.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A success leaves the failures counted: axes would also wipe the address's, so anyone with an
# account could reset the count of the address they guess from.
AXES_RESET_ON_SUCCESS = False
# REMOTE_ADDR only: daphne fills it from nginx's X-Forwarded-For under --proxy-headers (see there).
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
AXES_HTTP_RESPONSE_CODE = 429
# The throttle needs only failures; a row for every successful sign-in would grow forever.
AXES_DISABLE_ACCESS_LOG = True
