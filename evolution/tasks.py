"""The beat's task: start the generations that are due, as processes of their own (docs/evolution.md)."""

from __future__ import annotations

from celery import shared_task

from evolution.services import start_due_processes


@shared_task(ignore_result=True)
def start_due_generations_task() -> list[str]:
    """Start `evolve_partner --if-due` for each due experiment; trains nothing here (idempotent: the lock)."""
    return start_due_processes()
