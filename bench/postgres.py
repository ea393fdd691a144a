"""A private Postgres server for fault injection: `with PrivatePostgres() as pg: ... pg.restart(down_s=10)`.

The chaos suite restarts Postgres under a running site; doing that to the machine's own server
would pull the floor from under everything else on it (other databases, other runs). So the suite
makes a throw-away cluster (initdb in a temporary folder, trust authentication, loopback only, a
free port, fsync off) and removes it at the end. As root, the cluster is run as the `postgres`
user, since Postgres refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from devtools.partner_process import free_port


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), "")
    if not found:
        raise RuntimeError(f"{name} was not found: install the Postgres server (Debian: postgresql)")
    return found


class PrivatePostgres:
    """A throw-away Postgres cluster on 127.0.0.1:<free port>, user postgres, trust authentication."""

    def __init__(self, *, max_connections: int = 200) -> None:
        self.port = free_port()
        self.max_connections = max_connections
        self.home = Path(tempfile.mkdtemp(prefix="clickme-pg-"))
        self.data = self.home / "data"
        self.log = self.home / "postgres.log"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command[:2])} failed: {done.stderr[-2000:]}\n{tail}")

    def __enter__(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
        self._run(_binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)

    def start(self) -> None:
        settings = {"listen_addresses": "127.0.0.1", "fsync": "off", "synchronous_commit": "off",
                    "full_page_writes": "off", "max_connections": self.max_connections}  # fmt: skip
        options = f"-p {self.port} -k {self.home} " + " ".join(f"-c {key}={value}" for key, value in settings.items())
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        self._wait()

    def stop(self) -> None:
        """Stop at once (fast shutdown: open connections are cut, as in a crash or a failover)."""
        if (self.data / "postmaster.pid").exists():
            self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self, *, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def _wait(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(f"{self.url}/postgres", connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
