"""Tests for the "right for the right reasons" map loss: it penalises sensitivity where humans did not look."""

from __future__ import annotations

import torch

from model_server.losses import irrelevance, rrr_loss


def linear_logits(images: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Two logits that read the pixels under ``where`` (1, 1, H, W) only."""
    evidence = (images * where).sum((1, 2, 3))
    return torch.stack([evidence, -evidence], dim=1)


def test_irrelevance_is_one_off_the_map_and_zero_at_its_peak() -> None:
    maps = torch.tensor([[[[0.0, 0.5], [2.0, 1.0]]]])
    torch.testing.assert_close(irrelevance(maps), torch.tensor([[[[1.0, 0.75], [0.0, 0.5]]]]))


def test_a_network_reading_only_the_mapped_pixels_costs_nothing_and_one_reading_the_rest_does() -> None:
    maps = torch.zeros(2, 1, 8, 8)
    maps[:, :, 2:6, 2:6] = 1.0  # the object
    has_map = torch.tensor([True, True])
    for where, costs in ((maps[:1], False), (1 - maps[:1], True)):
        images = torch.rand(2, 3, 8, 8, requires_grad=True)
        loss = rrr_loss(linear_logits(images, where), images, maps, has_map)
        assert bool(loss > 0) is costs
        if costs:
            (grad,) = torch.autograd.grad(loss, images)  # the penalty itself trains (double backward)
            assert grad is not None


def test_images_without_a_map_add_nothing() -> None:
    images = torch.rand(2, 3, 8, 8, requires_grad=True)
    logits = linear_logits(images, torch.ones(1, 1, 8, 8))
    assert rrr_loss(logits, images, torch.zeros(2, 1, 8, 8), torch.tensor([False, False])) == 0
