"""Settings for the chat site: everything an operator changes comes from the environment.

See README.md ("Configuration") for the variables and their defaults.
"""

import os
import re
import sys
import warnings
from datetime import timedelta
from ipaddress import ip_network
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


def env_choice(name: str, choices: tuple[str, ...]) -> str:
    """Read one of `choices` (unset or empty: the first)."""
    value = os.environ.get(name, "").strip() or choices[0]
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; not {value!r}.")
    return value


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
    "django_prometheus",
    "axes",
    "accounts",
    "rooms",
]

MIDDLEWARE = [
    # First and last: django-prometheus times every request for /metrics.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chatsite.middleware.ContentSecurityPolicyMiddleware",
    # Last but one, as axes documents: it turns a throttled sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
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
    # Django's backend, counted for /metrics by django-prometheus' (queries, their time, errors,
    # connections), its cursor class made once (see there).
    DATABASES["default"]["ENGINE"] = "chatsite.sqlite3"

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, minus the health check of a connection busy a moment ago (see there),
    # counted for /metrics.
    DATABASES["default"]["ENGINE"] = "chatsite.postgresql"
    # A stopped or unreachable server must fail requests (and /healthz) fast, not hang them.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 3

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Who may read GET /metrics (chatsite/metrics.py): addresses or networks, comma-separated.
try:
    METRICS_ALLOW = [
        ip_network(part.strip(), strict=False)
        for part in os.environ.get("CHATSITE_METRICS_ALLOW", "127.0.0.1,::1").split(",")
        if part.strip()
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"CHATSITE_METRICS_ALLOW: {exc}") from None


def env_addresses(name: str) -> list[tuple[str, int]]:
    """Read `host:port,host:port` (an IPv6 host in brackets); any other part stops start-up."""
    addresses = []
    for part in env_list(name, ""):
        host, _, port = part.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(
                f"{name}: {part!r} is not host:port (for example 10.0.0.5:26379)."
            )
        addresses.append((host, int(port)))
    return addresses


def redis_url_options(url: str) -> dict:
    """What redis-py reads from one Redis URL (`host`, `port`, `db`, `password`…); one it
    cannot read stops start-up."""
    try:
        return parse_redis_url(url)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REDIS_URL={url!r} is not a Redis URL: {exc}") from None


def redis_database(url: str) -> int:
    """The database number of a Redis URL as redis-py reads it (`/2` or `?db=2`), else 0."""
    if not url:
        return 0
    # With several servers (comma-separated), the first one's.
    return int(redis_url_options(url.split(",")[0].strip()).get("db", 0))


def sentinel_master_options(url: str, master: str) -> dict[str, int | str]:
    """The database and credentials REDIS_URL gives the master that Sentinel finds (database 0
    when REDIS_URL is unset); a REDIS_URL that names a server stops start-up."""
    if not url:
        return {"db": 0}
    options = redis_url_options(url)
    # No host but the master's name, no port, no TLS or Unix socket (connection_class), one URL.
    if (
        "," in url
        or options.get("host", master) != master
        or {"port", "connection_class"} & set(options)
    ):
        raise ImproperlyConfigured(
            f"REDIS_URL={url!r}: with REDIS_SENTINELS, Sentinel finds the server, so REDIS_URL "
            f"gives only the database and password: redis://:PASSWORD@{master}/DB or "
            "redis://:PASSWORD@/DB (or leave it unset for database 0 without a password)."
        )
    credentials = {key: options[key] for key in ("username", "password") if options.get(key)}
    return {"db": int(options.get("db", 0)), **credentials}


REDIS_URL = os.environ.get("REDIS_URL", "").strip()
# One or several servers, comma-separated: the channel layer shards over them, everything else
# uses the first (docs/scaling.md, "Several Redis servers and Sentinel").
_redis_servers = [part.strip() for part in REDIS_URL.split(",") if part.strip()]
for _server in _redis_servers:
    redis_url_options(_server)
if len(set(_redis_servers)) < len(_redis_servers):
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} lists a server twice.")

# Or Redis Sentinel: where the sentinels listen and the name they know the master by; the site
# asks them for the master and follows a failover. REDIS_URL then gives only the database and
# password (sentinel_master_options).
REDIS_SENTINELS = env_addresses("REDIS_SENTINELS")
REDIS_SENTINEL_MASTER = os.environ.get("REDIS_SENTINEL_MASTER", "").strip()
if bool(REDIS_SENTINELS) != bool(REDIS_SENTINEL_MASTER):
    raise ImproperlyConfigured(
        "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together: the sentinels' addresses "
        "(host:port,host:port) and the name they monitor the master by."
    )
# The cache reaches the master through a URL whose host is this name (django-redis), and URL
# host names are read in lower case.
if REDIS_SENTINEL_MASTER and not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,99}", REDIS_SENTINEL_MASTER):
    raise ImproperlyConfigured(
        f"REDIS_SENTINEL_MASTER={REDIS_SENTINEL_MASTER!r}: use lower-case ASCII letters, digits, "
        "'.', '-' or '_'."
    )
REDIS_SENTINEL_MASTER_OPTIONS = (
    sentinel_master_options(REDIS_URL, REDIS_SENTINEL_MASTER) if REDIS_SENTINELS else {}
)


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
    # channels-redis's RedisChannelLayer, with direct sends placed right on several servers.
    "core": "chatsite.channel_layers.ShardedRedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
_layer_kind = env_choice("CHATSITE_CHANNEL_LAYER", ("pubsub", "core"))

# The channel layer's servers: channels-redis places each group and each process's channels on
# one of them by consistent hashing (stack fact 12). Presence, rate limits and the cache use the
# first server only (here and in rooms/redis.py): every worker must find their keys in one place,
# and django-redis would take a comma-separated LOCATION for a primary and its replicas.
# socket_timeout=None: a finite read timeout races the layer's blocking reads and drops idle
# sockets (redis-py 8 made it 5 s by default; stack fact 1).
if REDIS_SENTINELS:
    _layer_hosts: list[dict[str, object]] = [
        {
            "sentinels": REDIS_SENTINELS,
            "master_name": REDIS_SENTINEL_MASTER,
            # Asking where the master is must not hang a reconnect on a silent sentinel.
            "sentinel_kwargs": {"socket_connect_timeout": 1, "socket_timeout": 1},
            "socket_timeout": None,
            **REDIS_SENTINEL_MASTER_OPTIONS,
        }
    ]
else:
    _layer_hosts = [{"address": server, "socket_timeout": None} for server in _redis_servers]

if _layer_hosts:
    _layer_config: dict[str, object] = {"hosts": _layer_hosts, "prefix": REDIS_KEY_PREFIX}
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
    if REDIS_SENTINELS:
        # django-redis asks the sentinels for the master that LOCATION's host names (with the
        # master's timeouts below for the sentinels too), with REDIS_URL's credentials.
        _cache_location = f"redis://{REDIS_SENTINEL_MASTER}/{REDIS_SENTINEL_MASTER_OPTIONS['db']}"
        _cache_sentinel_options: dict[str, object] = {
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "SENTINELS": REDIS_SENTINELS,
            **{
                key.upper(): value
                for key, value in REDIS_SENTINEL_MASTER_OPTIONS.items()
                if key in ("username", "password")
            },
        }
    else:
        _cache_location, _cache_sentinel_options = _redis_servers[0], {}
    CACHES = {
        "default": {
            # django-redis rather than Django's RedisCache: it can turn a Redis outage into
            # cache misses (logged) instead of exceptions, so `cached_db` sessions fall back to
            # the database and pages and sign-in keep working (contract §4). The timeouts bound
            # what a paused or unreachable Redis costs each cache call (docs/deploy.md).
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": _cache_location,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
            "OPTIONS": {
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
                **_cache_sentinel_options,
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
# Attachments, in the default storage above (a setting away from S3 with django-storages).
MEDIA_ROOT = os.environ.get("CHATSITE_MEDIA_ROOT") or str(BASE_DIR / "media")
MEDIA_URL = "/media/"  # never served as such: rooms/attachments.py checks who asks
# Behind nginx: the URL prefix of nginx's `internal` location for MEDIA_ROOT; attachments are
# then sent by nginx (X-Accel-Redirect) once Django has checked who asks. Unset: by Django.
ATTACHMENT_ACCEL_PREFIX = os.environ.get("CHATSITE_ATTACHMENT_ACCEL_PREFIX", "")

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

# `rooms`: a worker receives the events of the rooms and users it has connections of;
# `broadcast`: every worker receives every event (docs/scaling.md compares them).
CHAT_ROUTING = env_choice("CHATSITE_ROUTING", ("rooms", "broadcast"))

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
    # A hub says how far it got this often, to every group it sent to meanwhile (rooms/fanout.py).
    "HUB_BEAT_SECONDS": 2,
    # How long a worker stays in a room's group after its last connection there went: a tab
    # reloaded or a socket moved back within it costs no leave and join.
    "HUB_LEAVE_AFTER_SECONDS": 10,
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
    # Attachments (rooms/attachments.py): the largest file, files per message, uploads a user
    # may hold unsent, and uploads per user and hour (a burst of 20).
    "ATTACHMENT_MAX_BYTES": 10 * 1024 * 1024,
    "ATTACHMENTS_PER_MESSAGE": 10,
    "UNSENT_ATTACHMENTS": 20,
    "UPLOADS_PER_HOUR": env_int("CHATSITE_UPLOADS_PER_HOUR", 120),
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
