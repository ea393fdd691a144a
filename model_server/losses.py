"""Training losses as pure functions: classification and click-map alignment (docs/training.md, "Co-training losses").

The map loss follows Linsley et al. (ICLR 2019) and its released code; shapes are in comments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NORMALISATIONS = ("sqrt_sum", "l2")
REDUCTIONS = ("mean", "lab")
RESIZES = ("area", "bilinear")
# The released loss sums over the batch and weighs the sum by 1e-5; "lab" multiplies map_weight by it.
LAB_SCALE = 1e-5
# The released code blurs ClickMe maps with a 49 px Gaussian of sigma 28 before resizing them.
LAB_BLUR_SIZE, LAB_BLUR_SIGMA = 49, 28.0
# How far below "shut" the gate loss pushes a hard gate where people did not look (in logits).
GATE_MARGIN = 0.2
# Below this share of its peak, a map says "people did not look here": the gate loss shuts the gate
# fully there and less and less up to it. Players reveal the parts they need, so a click map covers
# an object unevenly: on the shortcut demonstration's human maps, 61 % of the object lies above 0.3
# of the peak and 93 % above 0.05 (5 % of the background). Shutting the rest of the object cuts the
# silhouette the classifier needs (docs/training.md, "The shortcut demonstration").
GATE_SHUT_BELOW = 0.05


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of logits (B, K) against integer labels (B,)."""
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def normalise_map(maps: torch.Tensor, how: str = "sqrt_sum", eps: float = 1e-8) -> torch.Tensor:
    """Scale each non-negative map (B, 1, H, W) by sqrt(sum) (the released code) or by its L2 norm."""
    if how not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, not {how!r}")
    flat = maps.flatten(1)  # (B, H*W)
    scale = flat.sum(1).clamp_min(eps).sqrt() if how == "sqrt_sum" else flat.norm(dim=1)
    return maps / scale.clamp_min(eps).view(-1, 1, 1, 1)


def blur_maps(maps: torch.Tensor, size: int = LAB_BLUR_SIZE, sigma: float = LAB_BLUR_SIGMA) -> torch.Tensor:
    """Blur maps (B, 1, H, W) with a separable Gaussian (size px, sigma), edges replicated."""
    offsets = torch.arange(size, dtype=maps.dtype, device=maps.device) - (size - 1) / 2
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    pad = size // 2
    maps = F.conv2d(F.pad(maps, (pad, pad, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(maps, (0, 0, pad, pad), mode="replicate"), kernel.view(1, 1, -1, 1))


def attention_loss(
    maps: list[torch.Tensor],
    click_maps: torch.Tensor,
    has_map: torch.Tensor,
    how: str = "sqrt_sum",
    *,
    reduction: str = "mean",
    resize: str = "area",
) -> torch.Tensor:
    """Mean over GALA layers of 1/2 ||n(M_l) - n(A_l)||^2, reduced over the images that have a map.

    Args:
        maps: per GALA layer, mean_c(A^2) of shape (B, 1, h_l, w_l).
        click_maps: ClickMe maps (B, 1, H, W), non-negative; resized to each layer by ``resize``
            (``area``, ours, or ``bilinear``, the released code's).
        has_map: (B,) bool; images without a click map add nothing.
        reduction: ``mean`` over images with a map (ours), or ``lab``: the sum over them times
            ``LAB_SCALE``, as the released loss (tf's l2_loss summed over the batch, weighted 1e-5).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, not {reduction!r}")
    if resize not in RESIZES:
        raise ValueError(f"resize must be one of {RESIZES}, not {resize!r}")
    weights = has_map.to(click_maps.dtype)  # (B,)
    if not maps or weights.sum() == 0:
        return click_maps.new_zeros(())
    per_layer = []
    for attention in maps:
        if resize == "area":
            target = F.interpolate(click_maps, size=attention.shape[-2:], mode="area")
        else:
            target = F.interpolate(click_maps, size=attention.shape[-2:], mode="bilinear", align_corners=False)
        diff = normalise_map(target, how) - normalise_map(attention, how)  # (B, 1, h, w)
        per_image = 0.5 * diff.pow(2).flatten(1).sum(1)  # (B,)
        total = (per_image * weights).sum()
        per_layer.append(total / weights.sum() if reduction == "mean" else LAB_SCALE * total)
    return torch.stack(per_layer).mean()


def relevance(click_maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A map (B, 1, H, W) resized to ``size`` (area) and scaled to peak 1 per image: 1 where people looked most."""
    target = F.interpolate(click_maps, size=size, mode="area")
    return target / target.flatten(1).amax(1).clamp_min(1e-8).view(-1, 1, 1, 1)


def gate_loss(
    logits: list[torch.Tensor],
    click_maps: torch.Tensor,
    has_map: torch.Tensor,
    margin: float = GATE_MARGIN,
    shut_below: float = GATE_SHUT_BELOW,
) -> torch.Tensor:
    """Hinges on a hard gate's logits: shut where people did not look, open where they did.

    A hard gate is clamp(1 + z, 0, 2) (``gala.GALA``): shut (exactly 0) at 1 + z <= 0, at least the
    identity at 1 + z >= 1. With t the map scaled to peak 1 (``relevance``), each position and
    channel costs max(0, 1 - t / shut_below) * relu(1 + z + margin) + t * relu(1 - (1 + z)): zero
    once a gate is shut by ``margin`` where t = 0 or open where t = 1; where t >= shut_below only
    opening costs. The hinges act on z, not on the clamped gate,
    whose gradient is zero once shut: a gate shut by mistake over the object can still reopen.
    Mean over positions and channels, over the images that have a map, then over the layers.

    Args:
        logits: per GALA layer, z of shape (B, C, h_l, w_l) (``network.gate_logits``).
        click_maps: (B, 1, H, W), non-negative.
        has_map: (B,) bool; images without a click map add nothing.
    """
    weights = has_map.to(click_maps.dtype)
    if not logits or weights.sum() == 0:
        return click_maps.new_zeros(())
    per_layer = []
    for z in logits:
        t = relevance(click_maps, z.shape[-2:])  # (B, 1, h, w)
        opened = 1.0 + z
        shut = (1.0 - t / shut_below).clamp_min(0.0)
        cost = shut * F.relu(opened + margin) + t * F.relu(1.0 - opened)  # (B, C, h, w)
        per_layer.append((cost.flatten(1).mean(1) * weights).sum() / weights.sum())
    return torch.stack(per_layer).mean()


def standardise(maps: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Z-score each map (B, 1, H, W) over its pixels."""
    flat = maps.flatten(1)
    mean, std = flat.mean(1), flat.std(1)
    return (maps - mean.view(-1, 1, 1, 1)) / (std.view(-1, 1, 1, 1) + eps)


def pyramid(maps: torch.Tensor, levels: int = 5) -> list[torch.Tensor]:
    """Return maps (B, 1, H, W) at ``levels`` scales, halving by 2x2 averages from full size."""
    scales = [maps]
    for _ in range(levels - 1):
        scales.append(F.avg_pool2d(scales[-1], 2))
    return scales


def gradient_saliency(logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """|d logit_true / d image|, max over colour channels (B, 1, H, W), kept in the graph for training.

    ``images`` must have required grad before the forward pass that gave ``logits``.
    """
    chosen = logits.gather(1, labels[:, None]).sum()
    (grad,) = torch.autograd.grad(chosen, images, create_graph=True)
    return grad.abs().amax(1, keepdim=True)


def harmonization_loss(
    saliency: torch.Tensor, click_maps: torch.Tensor, has_map: torch.Tensor, levels: int = 5
) -> torch.Tensor:
    """The Harmonization loss (Fel et al. 2022): pyramid MSE of standardised saliency and human maps.

    Both maps (B, 1, H, W) are standardised, then compared at ``levels`` scales; the mean over
    scales of the mean squared error over the images that have a map.
    """
    weights = has_map.to(click_maps.dtype)
    if weights.sum() == 0:
        return click_maps.new_zeros(())
    if click_maps.shape[-2:] != saliency.shape[-2:]:
        click_maps = F.interpolate(click_maps, size=saliency.shape[-2:], mode="area")
    per_level = []
    for ours, theirs in zip(pyramid(saliency, levels), pyramid(click_maps, levels), strict=True):
        error = (standardise(ours) - standardise(theirs)).pow(2).flatten(1).mean(1)  # (B,)
        per_level.append((error * weights).sum() / weights.sum())
    return torch.stack(per_level).mean()


def irrelevance(click_maps: torch.Tensor) -> torch.Tensor:
    """1 where a map (B, 1, H, W) is 0 and 0 at its peak: where the humans did not look, scaled per image."""
    peak = click_maps.flatten(1).amax(1).clamp_min(1e-8).view(-1, 1, 1, 1)
    return 1.0 - (click_maps / peak).clamp(0, 1)


def rrr_loss(
    logits: torch.Tensor, images: torch.Tensor, click_maps: torch.Tensor, has_map: torch.Tensor
) -> torch.Tensor:
    """ "Right for the right reasons" (Ross et al. 2017) with a human map as the annotation.

    The input gradient of the summed log-probabilities, (d sum_k log p_k / d pixels)^2, weighed by
    where humans did not look (``irrelevance``), summed over colours and averaged over pixels and
    over the images that have a map. ``images`` must have required grad before the forward pass
    that gave ``logits``; the gradient stays in the graph, so this trains the input gradient.
    """
    weights = has_map.to(click_maps.dtype)
    if weights.sum() == 0:
        return click_maps.new_zeros(())
    log_probabilities = F.log_softmax(logits, dim=1).sum()
    (grad,) = torch.autograd.grad(log_probabilities, images, create_graph=True)
    if click_maps.shape[-2:] != grad.shape[-2:]:
        click_maps = F.interpolate(click_maps, size=grad.shape[-2:], mode="area")
    per_image = (irrelevance(click_maps) * grad.square().sum(1, keepdim=True)).flatten(1).mean(1)  # (B,)
    return (per_image * weights).sum() / weights.sum()
