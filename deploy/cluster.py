"""A local scale-out cluster: N daphne workers behind nginx, sharing PostgreSQL and Redis.

It runs the site the way docs/deploy.md tells an operator to: `migrate`, `collectstatic
--noinput`, then N `daphne` workers with the same DATABASE_URL and REDIS_URL behind nginx, with
debug off and a secret key. Only the TLS is left out (plain http on loopback).

    python -m deploy.cluster start --workers 4     # make cluster
    python -m deploy.cluster status
    python -m deploy.cluster restart-worker 2
    python -m deploy.cluster rolling-restart
    python -m deploy.cluster stop                  # make cluster-stop
    python -m deploy.cluster render-example        # rewrite deploy/nginx*.conf (deploy/nginx.py)

The CLI and the tests (tests/cluster/) share the `Cluster` class. Its processes are supervisord's
programs (a supervisord of the cluster's own, in the run directory, run/cluster/ by default):
supervisord starts, signals and ends each by its PID, and reports them; this module writes its
configuration and nginx's, prepares the database, and waits for what must answer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from deploy.nginx import (
    EXAMPLES,
    FAIL_TIMEOUT_SECONDS,
    generated_by,
    render_nginx_conf,
    upstream_lines,
)
from deploy.workers import daphne_command

BASE_DIR = Path(__file__).resolve().parent.parent

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/chatsite_cluster"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_RUN_DIR = BASE_DIR / "run" / "cluster"

# How long a worker gets to close its sockets (4012) and exit before it is killed.
STOP_TIMEOUT_SECONDS = 10.0
START_TIMEOUT_SECONDS = 30.0


class ClusterError(RuntimeError):
    """Something the operator must fix; the message says what."""


# --- the cluster ------------------------------------------------------------------------------


@dataclass
class ClusterConfig:
    """Where the cluster listens, what it talks to, and where it keeps its state."""

    workers: int = 4
    host: str = "127.0.0.1"
    port: int = 8080
    first_worker_port: int = 8101
    database_url: str = field(
        default_factory=lambda: os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    )
    redis_url: str = field(default_factory=lambda: os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    run_dir: Path = DEFAULT_RUN_DIR
    # Extra environment for every worker (tests give a unique CHATSITE_LAYER_PREFIX).
    env: dict[str, str] = field(default_factory=dict)

    def worker_port(self, index: int) -> int:
        """Worker `index` (1-based) listens on first_worker_port + index - 1."""
        return self.first_worker_port + index - 1

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def save(self) -> None:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        (self.run_dir / "cluster.json").write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path = DEFAULT_RUN_DIR) -> ClusterConfig:
        path = run_dir / "cluster.json"
        if not path.exists():
            raise ClusterError(f"No cluster recorded in {_show(run_dir)}: start one first.")
        data = json.loads(path.read_text())
        data["run_dir"] = Path(data["run_dir"])
        return cls(**data)


class Cluster:
    """N daphne workers and one nginx, started and ended by PID."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.run_dir = config.run_dir
        self.log_dir = self.run_dir / "logs"
        self.nginx_prefix = self.run_dir / "nginx"

    # --- the services it needs --------------------------------------------------------------

    def check_services(self) -> None:
        """PostgreSQL and Redis answer, or a ClusterError says which does not and where."""
        db = urlparse(self.config.database_url)
        if db.scheme not in ("postgres", "postgresql"):
            raise ClusterError(
                f"DATABASE_URL must be a postgres:// URL for a cluster, not {db.scheme}://: "
                "SQLite cannot be shared by several workers."
            )
        try:
            self._admin_connection().close()
        except Exception as exc:
            raise ClusterError(
                f"PostgreSQL does not answer at {db.hostname}:{db.port or 5432} ({exc}). "
                "Start it, or point DATABASE_URL at one."
            ) from None
        import redis

        # Each server when REDIS_URL lists several (docs/scaling.md).
        for url in (part.strip() for part in self.config.redis_url.split(",") if part.strip()):
            rd = urlparse(url)
            try:
                client = redis.Redis.from_url(url, socket_connect_timeout=2)
                client.ping()
                client.close()
            except Exception as exc:
                raise ClusterError(
                    f"Redis does not answer at {rd.hostname}:{rd.port or 6379} ({exc}). "
                    "Start it, or point REDIS_URL at one."
                ) from None

    def _admin_connection(self) -> Any:
        """A connection to the server's `postgres` database, for CREATE/DROP DATABASE."""
        import psycopg

        db = urlparse(self.config.database_url)
        return psycopg.connect(
            host=db.hostname or "127.0.0.1",
            port=db.port or 5432,
            user=db.username or "postgres",
            password=db.password,
            dbname="postgres",
            connect_timeout=3,
            autocommit=True,
        )

    @property
    def database_name(self) -> str:
        return urlparse(self.config.database_url).path.lstrip("/")

    def create_database(self) -> bool:
        """Create the cluster's database if missing; True if it was created."""
        from psycopg import sql

        with self._admin_connection() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [self.database_name]
            ).fetchone()
            if exists:
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database_name)))
            return True

    def drop_database(self) -> None:
        """Drop the cluster's database (tests use a throwaway one)."""
        from psycopg import sql

        with self._admin_connection() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.database_name)
                )
            )

    # --- configuration of the workers -------------------------------------------------------

    def secret_key(self) -> str:
        """A secret key made once per run directory and kept there (mode 0600)."""
        path = self.run_dir / "secret_key"
        if not path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(50))
        return path.read_text().strip()

    @property
    def media_root(self) -> Path:
        return self.config.run_dir / "media"

    def worker_env(self) -> dict[str, str]:
        """The environment of manage.py and every worker: production settings, no TLS."""
        env = dict(os.environ)
        # Production, not the developer's shortcuts.
        for name in ("CHATSITE_DEV", "DJANGO_SETTINGS_MODULE", "PYTEST_CURRENT_TEST"):
            env.pop(name, None)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "chatsite.settings",
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": self.secret_key(),
                # Plain http on loopback: a Secure cookie would never come back.
                "DJANGO_SECURE_COOKIES": "0",
                "DJANGO_SSL_REDIRECT": "0",
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DATABASE_URL": self.config.database_url,
                "REDIS_URL": self.config.redis_url,
                "PYTHONUNBUFFERED": "1",
                # Attachments: stored where nginx finds them, sent by nginx once a worker
                # has checked who asks.
                "CHATSITE_MEDIA_ROOT": str(self.media_root),
                "CHATSITE_ATTACHMENT_ACCEL_PREFIX": "/protected-media/",
            }
        )
        env.update(self.config.env)
        return env

    def manage(self, *args: str) -> None:
        """Run one manage.py command with the workers' environment; fail with its output."""
        done = subprocess.run(  # noqa: S603
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            cwd=BASE_DIR,
            env=self.worker_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ClusterError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    def prepare(self) -> None:
        """What an operator does once per release: the database, migrate, collectstatic."""
        self.check_services()
        self.create_database()
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")

    # --- processes: supervisord's programs ---------------------------------------------------

    @property
    def _socket(self) -> Path:
        return self.run_dir / "supervisor.sock"

    def supervisor_conf(self) -> str:
        """supervisord's configuration: the workers, then nginx, none restarted by itself (a
        fault test kills one and expects it to stay down). Workers stop before nginx: their
        sockets close (4012) through it."""
        # (name, command, priority): a lower priority starts first and stops last.
        programs = [("nginx", [*self._nginx_base(), "-g", "daemon off;"], 1)]
        for index in range(1, self.config.workers + 1):
            port = self.config.worker_port(index)
            # Client addresses from nginx's X-Forwarded-For (sign-in throttling and logs).
            command = daphne_command(port, "--proxy-headers", host=self.config.host)
            programs.append((f"worker-{index}", command, 10))
        lines = [
            "[supervisord]",
            f"logfile={self.log_dir / 'supervisord.log'}",
            f"pidfile={self.run_dir / 'supervisord.pid'}",
            f"directory={BASE_DIR}",
            "[unix_http_server]",
            f"file={self._socket}",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]",
            f"serverurl=unix://{self._socket}",
        ]
        for name, command, priority in programs:
            lines += [
                f"[program:{name}]",
                f"command={shlex.join(command)}",
                f"directory={BASE_DIR}",
                "autostart=false",
                "autorestart=false",
                "startsecs=0",
                f"stopwaitsecs={STOP_TIMEOUT_SECONDS:.0f}",
                f"priority={priority}",
                "redirect_stderr=true",
                f"stdout_logfile={self.log_dir / name}.log",
            ]
        # supervisord reads `%` as the start of its own expansions.
        return "\n".join(line.replace("%", "%%") for line in lines) + "\n"

    def _supervisor(self) -> Any:
        """supervisord's XML-RPC interface, over its socket."""
        from xmlrpc.client import ServerProxy

        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self._socket}")
        return ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def _supervisor_running(self) -> bool:
        try:
            return bool(self._supervisor().getState()["statename"] == "RUNNING")
        except Exception:  # no socket, or no one behind it
            return False

    def start_supervisor(self) -> None:
        """Start the cluster's supervisord (it runs on in the background) and wait for it."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "supervisord.conf"
        conf.write_text(self.supervisor_conf())
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
            cwd=BASE_DIR,
            env=self.worker_env(),
            check=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._supervisor_running():
            if time.monotonic() > deadline:
                raise ClusterError(f"supervisord did not start; see {_show(self.log_dir)}/.")
            time.sleep(0.1)

    def _pid(self, name: str) -> int | None:
        if not self._supervisor_running():
            return None
        info = self._supervisor().getProcessInfo(name)
        return int(info["pid"]) if info["statename"] == "RUNNING" and info["pid"] else None

    def _wait_stopped(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._pid(name) is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def worker_pids(self) -> dict[int, int]:
        """Worker index (1-based) -> PID, for the workers that run."""
        pids = {}
        for index in range(1, self.config.workers + 1):
            pid = self._pid(f"worker-{index}")
            if pid is not None:
                pids[index] = pid
        return pids

    @property
    def nginx_pid(self) -> int | None:
        return self._pid("nginx")

    def start_worker(self, index: int, wait: bool = True) -> int:
        """Start worker `index` on its port; wait until its /healthz answers 200."""
        port = self.config.worker_port(index)
        if not _port_free(self.config.host, port):
            raise ClusterError(f"Port {self.config.host}:{port} is taken: is a cluster running?")
        name = f"worker-{index}"
        self._supervisor().startProcess(name, True)
        if wait:
            self.wait_healthy(f"http://{self.config.host}:{port}/healthz", program=name)
        return self._pid(name) or 0

    def stop_worker(self, index: int, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """TERM worker `index` (it closes its sockets with 4012), KILL it after `timeout`."""
        name = f"worker-{index}"
        if self._pid(name) is None:
            return
        if timeout >= STOP_TIMEOUT_SECONDS:
            self._supervisor().stopProcess(name, True)  # TERM, KILL after stopwaitsecs
            return
        self._supervisor().signalProcess(name, "TERM")
        self._wait_stopped(name, timeout)
        if self._pid(name) is not None:
            self._supervisor().signalProcess(name, "KILL")
            self._wait_stopped(name, 5)

    def kill_worker(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to worker `index` without waiting (SIGKILL: wait for it to be gone)."""
        name = f"worker-{index}"
        if self._pid(name) is None:
            raise ClusterError(f"Worker {index} is not running.")
        self._supervisor().signalProcess(name, signal.Signals(sig).name.removeprefix("SIG"))
        if sig == signal.SIGKILL:
            self._wait_stopped(name, 5)

    def restart_worker(self, index: int, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """Stop worker `index` (TERM, then KILL after `timeout`), start it again, wait healthy."""
        self.stop_worker(index, timeout)
        return self.start_worker(index)

    def rolling_restart(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Restart every worker in turn, each back in nginx's rotation before the next."""
        for index in range(1, self.config.workers + 1):
            self.restart_worker(index, timeout)  # waits for the worker's own /healthz
            self.wait_in_rotation()

    def wait_in_rotation(self) -> None:
        """Wait until nginx sends requests to every worker again after one was down.

        While down, a worker refused connections and nginx left it out for fail_timeout.
        After that nginx tries it again, but counts it live only once a request to it has
        *completed*, and a WebSocket completes only when it closes: with sockets alone, a
        restarted worker would stay half out of rotation, and stopping the next one could leave
        none ("no live upstreams", 502). A few short requests, which least_conn sends to the
        emptiest (the restarted) worker, settle it.
        """
        time.sleep(FAIL_TIMEOUT_SECONDS + 0.5)
        for _ in range(2 * self.config.workers):
            http_get(f"{self.config.url}/accounts/login/", timeout=5)

    def nginx_conf(self) -> str:
        """The template rendered for this cluster: plain http on host:port, local workers."""
        return render_nginx_conf(
            {"production": False, "ipv6": False},
            {
                "generated": generated_by("python -m deploy.cluster start"),
                "user": "nobody",
                "pid_file": str(self.run_dir / "nginx.pid"),
                "error_log": str(self.log_dir / "nginx-error.log"),
                "access_log": str(self.log_dir / "nginx-access.log"),
                "mime_types": "/etc/nginx/mime.types",
                "server_name": f"{self.config.host} localhost",
                "listen": f"{self.config.host}:{self.config.port}",
                "static_root": str(BASE_DIR / "staticfiles"),
                "media_root": str(self.media_root),
                "upstream_servers": upstream_lines(
                    f"{self.config.host}:{self.config.worker_port(i)}"
                    for i in range(1, self.config.workers + 1)
                ),
            },
        )

    def start_nginx(self) -> int:
        nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
        if nginx is None:
            raise ClusterError("nginx is not installed (Debian: apt-get install nginx-light).")
        if not _port_free(self.config.host, self.config.port):
            raise ClusterError(f"Port {self.config.host}:{self.config.port} is taken.")
        self.nginx_prefix.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "nginx.conf"
        conf.write_text(self.nginx_conf())
        base = self._nginx_base()
        test = subprocess.run([*base, "-t", "-q"], capture_output=True, text=True, check=False)  # noqa: S603
        if test.returncode != 0:
            raise ClusterError(f"nginx rejects {_show(conf)}:\n{test.stderr}")
        self._supervisor().startProcess("nginx", True)
        return self._pid("nginx") or 0

    def _nginx_base(self) -> list[str]:
        """nginx with the cluster's prefix and configuration (not a daemon: supervisord's)."""
        nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
        conf = self.run_dir / "nginx.conf"
        return [nginx or "nginx", "-p", f"{self.nginx_prefix}/", "-c", str(conf), "-e", "stderr"]

    def wait_healthy(
        self, url: str, timeout: float = START_TIMEOUT_SECONDS, program: str | None = None
    ) -> None:
        """Poll `url` until it answers 200; fail early if supervisord's `program` exits."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if program is not None and self._pid(program) is None:
                raise ClusterError(
                    f"{program} exited before {url} answered; see {_show(self.log_dir)}/."
                )
            status, body = http_get(url, timeout=3)
            if status == 200:
                return
            last = f"{status} {body[:200]}" if status else body
            time.sleep(0.2)
        raise ClusterError(f"{url} did not answer 200 within {timeout:.0f}s (last: {last}).")

    # --- the whole cluster ------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the database, start the workers and nginx, wait until /healthz answers."""
        running = self.running()
        if running:
            raise ClusterError(
                f"A cluster is already running from {_show(self.run_dir)} "
                f"({', '.join(running)}): stop it first (make cluster-stop)."
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config.save()
        self.prepare()
        try:
            self.start_supervisor()
            for index in range(1, self.config.workers + 1):
                self.start_worker(index, wait=False)
            for index in range(1, self.config.workers + 1):
                port = self.config.worker_port(index)
                self.wait_healthy(
                    f"http://{self.config.host}:{port}/healthz", program=f"worker-{index}"
                )
            self.start_nginx()
            self.wait_healthy(f"{self.config.url}/healthz")
        except BaseException:
            self.stop()
            raise

    def running(self) -> list[str]:
        names = [f"worker-{i}" for i in range(1, self.config.workers + 1)] + ["nginx"]
        return [name for name in names if self._pid(name) is not None]

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """End the workers (TERM, KILL after `timeout`), then nginx, then supervisord."""
        if not self._supervisor_running():
            return
        for index in self.worker_pids:
            self._supervisor().signalProcess(f"worker-{index}", "TERM")
        for index in range(1, self.config.workers + 1):
            self.stop_worker(index, timeout)
        # The workers close their sockets (4012) through nginx, so nginx goes last.
        pid_file = self.run_dir / "supervisord.pid"
        supervisord = int(pid_file.read_text()) if pid_file.exists() else None
        with contextlib.suppress(Exception):
            self._supervisor().shutdown()
        deadline = time.monotonic() + timeout + 5
        while supervisord is not None and _alive(supervisord) and time.monotonic() < deadline:
            time.sleep(0.1)

    def describe(self) -> str:
        lines = [f"chatsite cluster at {self.config.url}/"]
        nginx = self.nginx_pid
        lines.append(f"  nginx     {self.config.url}  pid {nginx or '-'}")
        pids = self.worker_pids
        for index in range(1, self.config.workers + 1):
            port = self.config.worker_port(index)
            url = f"http://{self.config.host}:{port}"
            lines.append(f"  worker {index}  {url}  pid {pids.get(index, '- (not running)')}")
        lines += [
            f"  database  {self.config.database_url}",
            f"  redis     {self.config.redis_url}",
            f"  run dir   {_show(self.run_dir)}/ (supervisord.conf, logs/, nginx.conf, secret_key)",
        ]
        return "\n".join(lines)


# --- helpers ----------------------------------------------------------------------------------


def http_get(url: str, timeout: float = 5) -> tuple[int | None, str]:
    """GET `url`: (status, body), or (None, the error) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as exc:
        return None, str(exc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) != 0


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(BASE_DIR))
    except ValueError:
        return str(path)


# --- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.cluster", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="prepare the database, start workers and nginx")
    start.add_argument("--workers", type=int, default=4)
    start.add_argument("--port", type=int, default=8080, help="nginx port (default 8080)")
    start.add_argument("--first-worker-port", type=int, default=8101)
    commands.add_parser("stop", help="end every process of the cluster by PID")
    commands.add_parser("status", help="what runs, where")
    restart = commands.add_parser("restart-worker", help="TERM worker N, start it, wait healthy")
    restart.add_argument("index", type=int)
    commands.add_parser("rolling-restart", help="restart every worker in turn")
    example = commands.add_parser(
        "render-example", help="rewrite deploy/nginx.conf and deploy/nginx.docker.conf"
    )
    example.add_argument("--check", action="store_true", help="fail if it is out of date")
    args = parser.parse_args(argv)

    try:
        if args.command == "render-example":
            for path, render in EXAMPLES.items():
                if not args.check:
                    path.write_text(render())
                    print(f"wrote {_show(path)}")
                elif path.read_text() != render():
                    raise ClusterError(f"{_show(path)} is out of date: run render-example.")
            return 0
        if args.command == "start":
            if args.workers < 1:
                raise ClusterError("--workers must be at least 1.")
            config = ClusterConfig(
                workers=args.workers,
                port=args.port,
                first_worker_port=args.first_worker_port,
                run_dir=args.run_dir,
            )
            cluster = Cluster(config)
            cluster.start()
            print(cluster.describe())
            print("stop it with: make cluster-stop")
            return 0
        cluster = Cluster(ClusterConfig.load(args.run_dir))
        if args.command == "stop":
            running = cluster.running()
            cluster.stop()
            print(f"stopped: {', '.join(running) or 'nothing was running'}")
        elif args.command == "status":
            print(cluster.describe())
        elif args.command == "restart-worker":
            if not 1 <= args.index <= cluster.config.workers:
                raise ClusterError(f"There are workers 1..{cluster.config.workers}.")
            pid = cluster.restart_worker(args.index)
            print(f"worker {args.index} restarted: pid {pid}")
        elif args.command == "rolling-restart":
            cluster.rolling_restart()
            print(cluster.describe())
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
