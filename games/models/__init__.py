"""The games app's models, split by sub-domain; import them from here."""

from __future__ import annotations

from games.models.experiments import (
    IMAGE_SIZE,
    Category,
    Contest,
    Experiment,
    Image,
    ImageSet,
    PartnerModel,
    PartnerModelVersion,
)
from games.models.moderation import ModerationAction, QualityFlag
from games.models.partners import PromotionDecision
from games.models.play import Click, Consent, Participant, PartnerGuess, PlaySession, Round

__all__ = [
    "IMAGE_SIZE",
    "Category",
    "Click",
    "Consent",
    "Contest",
    "Experiment",
    "Image",
    "ImageSet",
    "ModerationAction",
    "Participant",
    "PartnerGuess",
    "PartnerModel",
    "PartnerModelVersion",
    "PlaySession",
    "PromotionDecision",
    "QualityFlag",
    "Round",
]
