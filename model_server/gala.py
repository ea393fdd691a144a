"""Global-and-local attention (GALA) module.

Paper: "Learning what and where to attend" (Linsley, Shiebler, Eberhardt & Serre, ICLR 2019;
arXiv 1805.08819, "Global-and-local attention networks for visual recognition").

On features U (B, C, H, W): a global channel vector G = W2 ReLU(W1 GAP(U)) (squeeze-and-excitation)
and a local spatial map S = conv1x1(ReLU(conv1x1(U))) (C -> C/r -> 1, with the released code's
optional 5x5 conv in the middle) are combined into one gate A = f(a * (G + S) + m * (G * S)), with
learnable per-channel a and m, and the block outputs U * A.

One deliberate deviation: f(z) = 2 sigmoid(z) (or 1 + tanh(z), or the "hard" clamp(1 + z, 0, 2),
which reaches exactly 0) instead of sigmoid(z) (or tanh(z)),
and a = m = 0 at initialisation. Then A == 1 exactly for any input, so a GALA network that loads a
plain ResNet's weights computes exactly what that network computed (docs/training.md, "Architecture"),
and training moves away from the identity from there. The gate is the plain sigmoid gate doubled, so it ranges
over (0, 2) rather than (0, 1). Its map mean_c(A^2) is 4x the paper's: the L2 normalisation of
the co-training loss cancels that, the released code's sqrt(sum) leaves a factor 2, which only
changes how far the learned gate must move to match a click map. Unlike a separate zero-initialised
scale on the gate (ReZero/LayerScale), the map that co-training shapes stays the very gate the
network applies: the two cannot drift apart.
"""

from __future__ import annotations

import torch
from torch import nn


class GALA(nn.Module):
    """Gate features with a combined global (channel) and local (spatial) attention."""

    def __init__(
        self,
        channels: int,
        *,
        reduction: int = 4,
        nonlinearity: str = "sigmoid",
        extra_conv: bool = True,
        combination: str = "both",
    ) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.global_mlp = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )
        local: list[nn.Module] = [nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True)]
        if extra_conv:
            local += [nn.Conv2d(hidden, hidden, 5, padding=2), nn.ReLU(inplace=True)]
        self.local_conv = nn.Sequential(*local, nn.Conv2d(hidden, 1, 1))
        # Zero scales make the gate exactly the identity at initialisation (see module docstring).
        uses_add = combination in ("additive", "both")
        uses_mul = combination in ("multiplicative", "both")
        self.add_scale = nn.Parameter(torch.zeros(channels)) if uses_add else None
        self.mul_scale = nn.Parameter(torch.zeros(channels)) if uses_mul else None
        self.nonlinearity = nonlinearity

    # Set by training (network.configure_gates), never saved: how the gate learns, not what it is.
    # ``gate_from_maps_only``: the classification loss does not reach the gate; only the click-map
    # loss trains it (docs/training.md, "Co-training losses"). ``keep_logits``: keep the last
    # forward's gate logits for the ``gate`` loss, which needs them where a hard gate is shut.
    gate_from_maps_only = False
    keep_logits = False
    last_logits: torch.Tensor | None = None

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Return z (B, C, H, W), the gate before its nonlinearity, for features x (B, C, H, W)."""
        global_ = self.global_mlp(x)  # (B, C, 1, 1)
        local = self.local_conv(x)  # (B, 1, H, W)
        zero = global_.new_zeros(())
        add = zero if self.add_scale is None else self.add_scale.view(1, -1, 1, 1)
        mul = zero if self.mul_scale is None else self.mul_scale.view(1, -1, 1, 1)
        # a * (G + S) + m * (G * S) == a * G + S * (a + m * G): one pass over (B, C, H, W) instead
        # of five, which are what a training step on the CPU spends its time on.
        return torch.addcmul(add * global_, local, add + mul * global_)  # (B, C, H, W)

    def squash(self, logits: torch.Tensor) -> torch.Tensor:
        """Return the gate A = f(z) for logits z."""
        if self.nonlinearity == "tanh":
            return 1.0 + torch.tanh(logits)
        if self.nonlinearity == "hard":
            return (1.0 + logits).clamp(0.0, 2.0)  # 1.0 at z == 0, and exactly 0 where z <= -1
        return 2.0 * torch.sigmoid(logits)  # 2 * sigmoid(0) == 1.0 exactly in floating point

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Return the gate A (B, C, H, W) for features x (B, C, H, W)."""
        return self.squash(self.gate_logits(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the gated features x * A and the gate A, both (B, C, H, W)."""
        logits = self.gate_logits(x)
        self.last_logits = logits if self.keep_logits else None
        attention = self.squash(logits)
        # Detached, the gate still shapes the features the classifier sees, but the classifier
        # cannot open it where people did not look: the returned A carries the map loss's gradient.
        return x * (attention.detach() if self.gate_from_maps_only else attention), attention


def attention_map(attention: torch.Tensor) -> torch.Tensor:
    """Reduce a gate (B, C, H, W) to the spatial map mean_c(A^2) (B, 1, H, W) used in co-training."""
    return attention.square().mean(dim=1, keepdim=True)
