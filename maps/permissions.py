"""Who may see which experiment's data (one rule for the researcher API and the dashboard), and who may change it."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from games.models import Experiment, ImageSet
from games.services.studies import can_change


def visible_experiments(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Experiment]:
    """The experiments a user may see: `Experiment.objects.visible_to`, the one rule."""
    return Experiment.objects.visible_to(user)


def visible_experiment(user: AbstractBaseUser | AnonymousUser, slug: str) -> Experiment:
    """One experiment the user may see; any other answers 404, so that its existence does not leak."""
    return get_object_or_404(visible_experiments(user).select_related("image_set", "partner", "owner"), slug=slug)


def changeable_experiment(user: AbstractBaseUser, slug: str) -> Experiment:
    """One experiment the user may change: 404 if they may not even see it, 403 if they may only look."""
    experiment = visible_experiment(user, slug)
    if not can_change(experiment, user):
        raise PermissionDenied("Only this study's owner or a superuser may change it; you may look at its data.")
    return experiment


def own_image_sets(user: AbstractBaseUser) -> QuerySet[ImageSet]:
    """The image sets a researcher may use in a study: the ones they uploaded (a superuser: all)."""
    if user.is_superuser:
        return ImageSet.objects.all()
    return ImageSet.objects.filter(owner_id=user.pk)
