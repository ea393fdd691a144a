"""Training losses as pure functions: classification and click-map alignment (SPEC section 7).

The map loss follows Linsley et al. (ICLR 2019) and its released code; shapes are in comments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NORMALISATIONS = ("sqrt_sum", "l2")


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


def attention_loss(
    maps: list[torch.Tensor],
    click_maps: torch.Tensor,
    has_map: torch.Tensor,
    how: str = "sqrt_sum",
) -> torch.Tensor:
    """Mean over GALA layers of 1/2 ||n(M_l) - n(A_l)||^2, averaged over images that have a map.

    Args:
        maps: per GALA layer, mean_c(A^2) of shape (B, 1, h_l, w_l).
        click_maps: ClickMe maps (B, 1, H, W), non-negative; resized to each layer by area.
        has_map: (B,) bool; images without a click map add nothing.
    """
    weights = has_map.to(click_maps.dtype)  # (B,)
    if not maps or weights.sum() == 0:
        return click_maps.new_zeros(())
    per_layer = []
    for attention in maps:
        target = F.interpolate(click_maps, size=attention.shape[-2:], mode="area")
        diff = normalise_map(target, how) - normalise_map(attention, how)  # (B, 1, h, w)
        per_image = 0.5 * diff.pow(2).flatten(1).sum(1)  # (B,)
        per_layer.append((per_image * weights).sum() / weights.sum())
    return torch.stack(per_layer).mean()
