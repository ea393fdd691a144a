"""Attention modules for a bottleneck, built by name: ``create_attention("gala" | "se" | "cbam" | "none")``.

One factory (in the manner of timm's ``create_attn``) lets plain, SE and GALA baselines be the same
network and the same training script, differing in one config field. Every module maps features
(B, C, H, W) to ``(gated features, gate or None)``: only GALA's gate is a map that co-training
compares with click maps, so SE and CBAM return None and add no term to the map loss.

- ``se``: squeeze-and-excitation (Hu et al. 2018), a channel gate sigmoid(W2 ReLU(W1 GAP(x))).
- ``cbam``: CBAM (Woo et al. 2018), a channel gate from average- and max-pooled features through
  one shared MLP, then a spatial gate from a 7x7 conv over the channel mean and max.
- ``gala``: see ``gala.py``; its gate starts as the identity.
"""

from __future__ import annotations

import torch
from torch import nn

from model_server.gala import GALA

ATTENTIONS = ("gala", "se", "cbam", "none")


class SqueezeExcite(nn.Module):
    """Channel gate of SE-ResNet: sigmoid(W2 ReLU(W1 GAP(x))), r-fold reduction."""

    def __init__(self, channels: int, *, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Return x scaled per channel, and no map."""
        return x * self.fc(x), None


class CBAM(nn.Module):
    """Channel then spatial gate of CBAM (shared MLP on avg and max pools; 7x7 conv on channel stats)."""

    def __init__(self, channels: int, *, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Return x gated per channel and then per position, and no map."""
        channel = torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))
        x = x * channel
        stats = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return x * torch.sigmoid(self.spatial(stats)), None


def create_attention(
    kind: str,
    channels: int,
    *,
    reduction: int = 4,
    nonlinearity: str = "sigmoid",
    extra_conv: bool = True,
    combination: str = "both",
) -> nn.Module | None:
    """Return the named attention module for ``channels`` features, or None for ``none``.

    ``reduction`` is shared by all kinds; GALA's other options are ignored by SE and CBAM.
    """
    if kind == "gala":
        return GALA(
            channels, reduction=reduction, nonlinearity=nonlinearity, extra_conv=extra_conv, combination=combination
        )
    if kind == "se":
        return SqueezeExcite(channels, reduction=reduction)
    if kind == "cbam":
        return CBAM(channels, reduction=reduction)
    if kind == "none":
        return None
    raise ValueError(f"attention must be one of {ATTENTIONS}, not {kind!r}")
