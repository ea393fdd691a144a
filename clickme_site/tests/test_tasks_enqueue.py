"""The one way to hand a task to the workers: after commit, and nothing from the queue reaches the service."""

from __future__ import annotations

from unittest import mock

import pytest
from celery.exceptions import Retry
from kombu.exceptions import OperationalError as BrokerError

from clickme_site.celery import app as celery_app
from clickme_site.tasks_enqueue import enqueue, enqueue_on_commit

NAME = "tests.some_task"


@pytest.fixture
def task():
    """A stand-in for a registered task, found by its name as services find theirs."""
    fake = mock.Mock(name=NAME)
    with mock.patch.dict(celery_app.tasks, {NAME: fake}):
        yield fake


@pytest.fixture
def with_broker():
    previous, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, False
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def in_process():
    previous, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.mark.django_db
def test_a_task_is_sent_only_once_the_transaction_commits(task, with_broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit(NAME, 7, "x", purpose="do the thing")
        task.delay.assert_not_called()
    task.delay.assert_called_once_with(7, "x")


def test_an_unreachable_broker_is_logged_and_told_to_the_caller_never_raised(task, with_broker) -> None:
    task.delay.side_effect = BrokerError("no broker")
    told, log = [], mock.Mock()
    enqueue(NAME, 7, purpose="do the thing", log=log, on_broker_error=told.append)
    assert [str(error) for error in told] == ["no broker"]
    assert "could not do the thing" in log.exception.call_args.args[0]


def test_a_task_that_fails_in_process_stops_in_the_helper(task, in_process) -> None:
    told, log = [], mock.Mock()
    for failure in (Retry("the partner is down"), RuntimeError("a bug")):
        task.delay.side_effect = failure
        enqueue(NAME, 7, purpose="do the thing", log=log, on_broker_error=told.append)
    assert log.exception.call_count == 2 and "in-process" in log.exception.call_args.args[0]
    assert told == [], "the broker was not involved"


def test_with_a_broker_a_mistake_in_sending_is_not_hidden(task, with_broker) -> None:
    task.delay.side_effect = TypeError("delay() got an unexpected keyword argument")
    with pytest.raises(TypeError):
        enqueue(NAME, 7, purpose="do the thing")


def test_a_countdown_is_sent_with_the_task_and_ignored_in_process(task, with_broker) -> None:
    enqueue(NAME, 7, purpose="do the thing", countdown=10)
    task.apply_async.assert_called_once_with((7,), countdown=10)
    task.delay.assert_not_called()
    celery_app.conf.task_always_eager = True
    enqueue(NAME, 8, purpose="do the thing", countdown=10)
    task.delay.assert_called_once_with(8)  # in-process: at once
