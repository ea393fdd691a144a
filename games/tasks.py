"""Celery tasks of the games app: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from games.services.scoring import enqueue_unscored_rounds, score_round
from model_server.client import PartnerUnavailable


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(PartnerUnavailable, OperationalError),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=6,
)
def score_round_task(round_id: int) -> None:
    """Score one submitted round (idempotent: a scored round is left alone)."""
    score_round(round_id=round_id)


@shared_task(ignore_result=True)
def sweep_unscored_rounds_task() -> None:
    """Periodically re-enqueue rounds whose scoring never happened."""
    enqueue_unscored_rounds()
