"""The production stack on one machine, startable from Python: `with Stack() as stack: ...`.

What `docker-compose.yml` runs, as processes on free loopback ports: gunicorn (gthread workers),
a Celery worker and beat, the partner model server, a private Redis server, and a database of its
own on the machine's Postgres (created at start, dropped at the end). Settings are production's
(DEBUG off, persistent connections, static files by WhiteNoise from a collectstatic tree), except
the HTTPS switches: the players speak plain HTTP on loopback. Every process is stopped when the
block ends, even on an error, so nothing is left running. A fault-injection suite can reuse it:
`stack.processes[kind]` are the Popen objects, `stack.env` the environment they run with.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg
import redis

from devtools.partner_process import DEMO_CHECKPOINT, ROOT, free_port, stop
from model_server.demo_data import DEMO_PARTNER

PY = sys.executable
PARTNER = DEMO_PARTNER


@dataclass
class StackConfig:
    """How big each part is; the defaults suit two cores (see docs/load-testing.md)."""

    web_workers: int = 2  # one per core: gthread workers are processes, their threads wait on I/O
    web_threads: int = 16  # a guess waits on the model server; threads keep a worker busy meanwhile
    celery_concurrency: int = 1  # scoring is forward passes on the model server; one prefork child keeps up
    model_workers: int | None = None  # the model server's own default
    postgres_url: str = "postgres://postgres@127.0.0.1:5432"  # the machine's server; the database is ours
    per_class: int = 10  # demo images per class (seed_demo)
    panel: bool = True  # also a Prolific study (`demo-panel`) for panel entry
    extra_env: dict[str, str] = field(default_factory=dict)


class Stack:
    """Start the whole stack on enter, stop it (and drop its database) on exit."""

    def __init__(self, config: StackConfig | None = None, *, workdir: Path | None = None) -> None:
        self.config = config or StackConfig()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="clickme-stack-"))
        self.database = f"clickme_load_{uuid.uuid4().hex[:8]}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, list[str]] = {}
        self._logs: dict[str, object] = {}
        self.url = ""
        self.model_url = ""
        self.redis_url = ""
        self.env: dict[str, str] = {}
        self._exit = ExitStack()

    # --- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    @property
    def database_url(self) -> str:
        return f"{self.config.postgres_url}/{self.database}"

    def _start(self) -> None:
        cfg = self.config
        media = self.workdir / "media"
        media.mkdir(parents=True, exist_ok=True)
        self._create_database()
        self._exit.callback(self._drop_database)
        redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self._spawn("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(self.workdir)])  # fmt: skip
        model_port, web_port = free_port(), free_port()
        self.model_url, self.url = f"http://127.0.0.1:{model_port}", f"http://127.0.0.1:{web_port}"
        self.env = {
            **os.environ,
            "DEBUG": "0",
            "SECRET_KEY": "load-stack-only-" + uuid.uuid4().hex * 2,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "MODEL_SERVER_URL": self.model_url,
            "MEDIA_ROOT": str(media),
            "STATIC_ROOT": str(self.workdir / "static"),
            "EXPORT_ROOT": str(self.workdir / "exports"),
            # Plain HTTP on loopback: no HTTPS redirect, no Secure-only cookies, no HSTS.
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "LOG_LEVEL": "WARNING",  # a log line per request costs the site more than it tells
            # Every load player comes from 127.0.0.1: the per-address limit would count them all as one lab.
            "RATE_LIMIT_ADDRESS_FACTOR": "100000",
            **cfg.extra_env,
        }
        self.env.pop("PYTHONPATH", None)
        self._manage("migrate", "--noinput")
        self._manage("collectstatic", "--noinput")
        self._manage("seed_demo", "--per-class", str(cfg.per_class), "--no-progress")
        if cfg.panel:
            self._manage("shell", "-c", PANEL_STUDY)
        model = [PY, "-m", "model_server.serve", "--checkpoint", str(DEMO_CHECKPOINT), "--name", PARTNER,
                 "--image-root", str(media), "--host", "127.0.0.1", "--port", str(model_port)]  # fmt: skip
        if cfg.model_workers:
            model += ["--workers", str(cfg.model_workers)]
        self._spawn("model", model)
        self._spawn("web", [PY, "-m", "gunicorn", "-c", "clickme_site/gunicorn_conf.py", "clickme_site.wsgi",
                            "--bind", f"127.0.0.1:{web_port}", "--workers", str(cfg.web_workers),
                            "--threads", str(cfg.web_threads), "--log-level", "warning"])  # fmt: skip
        self._spawn("worker", [PY, "-m", "celery", "-A", "clickme_site", "worker", "--loglevel", "WARNING",
                               "--concurrency", str(cfg.celery_concurrency), "--without-gossip",
                               "--without-mingle", "--without-heartbeat"])  # fmt: skip
        self._spawn("beat", [PY, "-m", "celery", "-A", "clickme_site", "beat", "--loglevel", "WARNING",
                             "--schedule", str(self.workdir / "celerybeat-schedule")])  # fmt: skip
        self._wait(f"{self.model_url}/v2/health/ready", "model", timeout=180)
        self._wait(f"{self.url}/healthz", "web", timeout=120)

    # --- helpers ------------------------------------------------------------------------------
    def _admin(self):
        return psycopg.connect(f"{self.config.postgres_url}/postgres", autocommit=True)

    def _on_server(self, statement: str) -> None:
        """Run one statement on the Postgres server itself (autocommit: CREATE/DROP DATABASE need it)."""
        connection = self._admin()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def _create_database(self) -> None:
        self._on_server(f'CREATE DATABASE "{self.database}"')

    def _drop_database(self) -> None:
        self._on_server(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _manage(self, *args: str) -> None:
        done = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")

    def _spawn(self, kind: str, command: list[str]) -> None:
        first = kind not in self.commands
        self.commands[kind] = command
        log = self._logs[kind] = self._logs.get(kind) or (self.workdir / f"{kind}.log").open("w")
        process = subprocess.Popen(command, cwd=ROOT, env=self.env or None, stdout=log, stderr=subprocess.STDOUT)
        self.processes[kind] = process
        if first:  # one callback per kind, stopping whichever process runs it at the end
            self._exit.callback(lambda: _stop(self.processes[kind], log))

    # --- faults (bench/chaos.py) ----------------------------------------------------------------
    def kill(self, kind: str, sig: int = signal.SIGTERM) -> None:
        """Send `sig` to a process and all its children at once (SIGKILL: no chance to clean up), and reap it."""
        process = self.processes[kind]
        try:
            tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for member in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        psutil.wait_procs(tree, timeout=10)

    def wait_up(self, kind: str, timeout: float = 180.0) -> None:
        """Wait until the web or model server answers its readiness URL."""
        url = {"web": f"{self.url}/healthz", "model": f"{self.model_url}/v2/health/ready"}[kind]
        self._wait(url, kind, timeout=timeout)

    def respawn(self, kind: str) -> None:
        """Start a stopped process again with the same command, as a supervisor would."""
        self._spawn(kind, self.commands[kind])

    def log(self, kind: str) -> str:
        path = self.workdir / f"{kind}.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def _wait(self, url: str, kind: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[kind].poll() is not None:
                raise RuntimeError(f"{kind} exited with {self.processes[kind].returncode}:\n{self.log(kind)}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{self.log(kind)}")

    def wait_for_idle_queue(self, timeout: float = 180.0, *, held_s: float = 120.0) -> bool:
        """Wait until the broker holds no task (waiting, or held by a worker for later: a map build's
        wait) for three seconds in a row; False if it never was within `timeout`.

        A task held longer than `held_s` is not counted: it is one a killed worker held, which the
        broker gives out again only after its visibility timeout (hours; the sweeps redo its work).
        """
        client = redis.Redis.from_url(self.redis_url)
        deadline, calm_since = time.monotonic() + timeout, None
        try:
            while time.monotonic() < deadline:
                # kombu's Redis transport scores each unacknowledged delivery by the time it was given out.
                if client.llen("celery") + client.zcount("unacked_index", time.time() - held_s, "+inf"):
                    calm_since = None
                elif calm_since is None:
                    calm_since = time.monotonic()
                elif time.monotonic() - calm_since >= 3:
                    return True
                time.sleep(0.5)
            return False
        finally:
            client.close()

    def postgres_backends(self) -> list[int]:
        """Pids of the Postgres server processes serving this stack's database (one per connection)."""
        connection = self._admin()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.database])
                return [row[0] for row in cursor.fetchall()]
        finally:
            connection.close()


def _stop(process: subprocess.Popen, log) -> None:
    """Stop a process (devtools.partner_process.stop) and close its log."""
    stop(process, timeout=20)
    log.close()


# A second study on Prolific, so that a share of players enters through a panel link.
PANEL_STUDY = """
from games.models import Experiment
demo = Experiment.objects.get(slug="demo")
if not Experiment.objects.filter(slug="demo-panel").exists():
    panel = Experiment.objects.get(pk=demo.pk)
    panel.pk = None
    panel.id = None
    panel.slug = "demo-panel"
    panel.title = "Demo (Prolific)"
    panel.recruitment = "prolific"
    panel.completion_code = "LOADTEST"
    panel.save()
"""
