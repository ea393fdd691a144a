"""Who may see which experiment's data: one rule shared by the researcher API and the dashboard."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from games.models import Experiment


def visible_experiments(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Experiment]:
    """The experiments a user may see, by the rule of `Experiment.can_be_seen_by`."""
    if not user.is_authenticated:
        return Experiment.objects.none()
    if user.is_superuser:
        return Experiment.objects.all()
    # A subquery rather than a join on `researchers`, so no row comes back twice and no DISTINCT is needed.
    shared = Experiment.researchers.through.objects.filter(user_id=user.pk).values("experiment_id")
    return Experiment.objects.filter(Q(owner_id=user.pk) | Q(pk__in=shared))


def visible_experiment(user: AbstractBaseUser | AnonymousUser, slug: str) -> Experiment:
    """One experiment the user may see; any other answers 404, so that its existence does not leak."""
    return get_object_or_404(visible_experiments(user).select_related("image_set", "partner", "owner"), slug=slug)
