"""Print the parameter counts of ResNet-50 and its attention variants: ``python -m model_server.params``.

GALA sits in every bottleneck of layer3 (conv4_x, r = 4) at either placement: "input" is the
released gala_tpu code's (the gate reads and scales the block's input: 512 channels in the first
block, 1024 in the other five), "output" is ours (the residual branch's 1024 channels in all six).
"""

from __future__ import annotations

from torch import nn

from model_server.config import preset
from model_server.network import build

# (label, preset, overrides); every row is compared with the plain ResNet-50.
ROWS = (
    ("GALA-ResNet-50, input, 5x5 conv", "gala_resnet50", {"placement": "input"}),
    ("GALA-ResNet-50, input, no 5x5 conv", "gala_resnet50", {"placement": "input", "extra_conv": False}),
    ("GALA-ResNet-50, output, 5x5 conv", "gala_resnet50", {}),
    ("GALA-ResNet-50, output, no 5x5 conv", "gala_resnet50", {"extra_conv": False}),
    ("SE-ResNet-50 (every block, r=16)", "se_resnet50", {}),
    ("CBAM-ResNet-50 (every block, r=16)", "cbam_resnet50", {}),
)


def count(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def counts() -> dict[str, int]:
    """Return the parameter count of ResNet-50 and of every row of ``ROWS``, by label."""
    result = {"ResNet-50": count(build(preset("resnet50")))}
    for label, arch, overrides in ROWS:
        result[label] = count(build(preset(arch, **overrides)))
    return result


def main() -> None:
    """Print every count and its difference from the plain ResNet-50."""
    table = counts()
    plain = table["ResNet-50"]
    for label, params in table.items():
        extra = "" if params == plain else f"  +{params - plain:,} (+{100 * (params - plain) / plain:.1f} %)"
        print(f"{label:<40}{params:>12,}{extra}")


if __name__ == "__main__":
    main()
