"""maps' answers to what games announces (games.signals, games.consensus): rebuild maps, provide consensus maps.

Connected by MapsConfig.ready(); games never imports maps (docs/architecture.md, "Signals between
games and maps"). Each receiver only enqueues: the map is rebuilt by a worker from raw clicks,
and services.enqueue_map_build never raises, so no announcement can fail the change it follows.
"""

from __future__ import annotations

from django.dispatch import receiver

from games.signals import round_counted, rounds_changed
from maps import services


@receiver(round_counted, dispatch_uid="maps.rebuild_map_of_counted_round")
def rebuild_map_of_counted_round(sender: object, *, experiment_id: int, image_id: int, **kwargs: object) -> None:
    """A newly scored round that counts: rebuild its image's map, with the other rounds counted meanwhile."""
    services.enqueue_map_build(experiment_id=experiment_id, image_id=image_id)


@receiver(rounds_changed, dispatch_uid="maps.rebuild_maps_of_moderated_images")
def rebuild_maps_of_moderated_images(
    sender: object, *, experiment_id: int, image_ids: list[int], **kwargs: object
) -> None:
    """A moderator changed which rounds count on these images: rebuild each one's map at once."""
    for image_id in image_ids:
        services.enqueue_map_build(experiment_id=experiment_id, image_id=image_id, coalesce=False)
