"""gunicorn's settings, one file for every way the site is served in production.

`gunicorn -c clickme_site/gunicorn_conf.py clickme_site.wsgi` in docker-compose.yml, the Dockerfile,
Procfile.prod (`make prod-local`) and the load stack (bench/stack.py); the bind address stays on
the command line. Sizing and why: docs/load-testing.md, "Sizing on two cores".

- gthread workers, one process per core: a guess waits on the model server for most of its
  time, and a worker's threads keep its core busy meanwhile.
- keep-alive longer than a player's pause between calls: with gunicorn's default of 2 s, a
  connection the browser kept through the 2-5 s between two rounds was closed under it, and the
  next round's start failed with a reset (`make load` counted them as errors). 75 s is what
  common proxies (nginx) keep; idle kept-alive connections wait in the worker's event loop, not
  in a thread.

Each value can be set from the environment (WEB_WORKERS, WEB_THREADS, WEB_KEEPALIVE_S); a value
that is not a whole number in range stops the start, naming the variable.
"""

from __future__ import annotations

import os


def _whole(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SystemExit(f"{name} must be between {minimum} and {maximum}, not {value}")
    return value


worker_class = "gthread"
workers = _whole("WEB_WORKERS", os.cpu_count() or 1, 1, 256)
threads = _whole("WEB_THREADS", 16, 1, 1024)
keepalive = _whole("WEB_KEEPALIVE_S", 75, 1, 3600)
