"""Print the parameter counts of GALA-ResNet-50 and ResNet-50: ``python -m model_server.params``."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from model_server.network import build, gala_resnet50, resnet50


def count(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def main() -> None:
    """Print both counts and the difference, with and without the local branch's 5x5 conv."""
    plain = count(resnet50())
    gala = gala_resnet50()
    without_conv = count(build(replace(gala.config, extra_conv=False)))
    print(f"{'ResNet-50':<42}{plain:>12,}")
    for name, params in (
        ("GALA-ResNet-50 (layer3, r=4, 5x5 conv)", count(gala)),
        ("GALA-ResNet-50 (layer3, r=4, no 5x5 conv)", without_conv),
    ):
        print(f"{name:<42}{params:>12,}  +{params - plain:,} (+{100 * (params - plain) / plain:.1f} %)")


if __name__ == "__main__":
    main()
