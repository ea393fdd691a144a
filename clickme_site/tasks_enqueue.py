"""Enqueue a Celery task by its registered name, after commit, with one error policy.

Design: docs/architecture.md, "Enqueueing tasks". Every service that hands work to a worker
(scoring a round, building a map, writing an export) goes through `enqueue` or
`enqueue_on_commit`, and none of them ever sees what went wrong in the queue:

- the broker cannot be reached: the failure is logged and `on_broker_error(exc)` is called,
  where the caller has something to record (an export marks its row failed); work that a sweep
  finds again (unscored rounds, stale maps) needs nothing more;
- in-process mode (`TASKS_IN_PROCESS`, development and tests without a broker): the task runs
  right here, and whatever it raises (a Retry while the partner is down, the partner's error, a
  bug) is logged and stops here, as it would stay in a worker; the task's own failure handling
  and the sweeps then do what they do after a worker's failure.

Tasks are named, not imported (`celery_app.tasks[name]`): a task module imports its services,
so a service importing the task module would be a cycle (docs/architecture.md, "Imports").
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

from clickme_site.celery import app as celery_app

logger = logging.getLogger(__name__)

# What `delay` raises when the broker is unreachable: kombu's error, or the socket's own.
BROKER_ERRORS = (BrokerError, ConnectionError, OSError)


def runs_in_process() -> bool:
    """Whether tasks run where they are enqueued (settings.TASKS_IN_PROCESS, or a test's eager_tasks)."""
    return bool(celery_app.conf.task_always_eager)


def enqueue(
    task_name: str,
    *args: object,
    purpose: str,
    log: logging.Logger = logger,
    on_broker_error: Callable[[Exception], None] | None = None,
    countdown: float = 0,
) -> None:
    """Send the task `task_name` now, to start `countdown` seconds later; never raises. `purpose`
    completes "could not …" in the log. In-process, the task runs at once whatever the countdown."""
    task = celery_app.tasks[task_name]
    if runs_in_process():
        try:
            task.delay(*args)
        except Exception:  # the task itself failed here, as it could in a worker: see the module docstring
            log.exception(f"could not {purpose} in-process; it is left to the sweep or a rerun")
        return
    try:
        task.apply_async(args, countdown=countdown) if countdown else task.delay(*args)
    except BROKER_ERRORS as exc:
        log.exception(f"could not {purpose}: the task queue is unreachable")
        if on_broker_error is not None:
            on_broker_error(exc)


def enqueue_on_commit(
    task_name: str,
    *args: object,
    purpose: str,
    log: logging.Logger = logger,
    on_broker_error: Callable[[Exception], None] | None = None,
) -> None:
    """`enqueue` once the current transaction commits (right away outside one), so a worker never
    reads rows that may still roll back."""
    transaction.on_commit(
        functools.partial(enqueue, task_name, *args, purpose=purpose, log=log, on_broker_error=on_broker_error)
    )
