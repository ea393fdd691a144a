"""The one configuration of a GALA network, stored in every checkpoint (nanoGPT's ``GPTConfig``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

NONLINEARITIES = ("sigmoid", "tanh", "hard")
COMBINATIONS = ("additive", "multiplicative", "both")
ATTENTIONS = ("gala", "se", "cbam", "none")  # attention.create_attention's kinds
PLACEMENTS = ("output", "input")


@dataclass(frozen=True)
class GALAConfig:
    """Architecture of a (GALA-)ResNet with bottleneck blocks, in torchvision's four-stage layout."""

    arch: str = "gala_resnet50"  # a name for humans and logs; the fields below define the network
    num_classes: int = 1000
    layers: tuple[int, ...] = (3, 4, 6, 3)  # bottleneck blocks per stage (layer1..layer4)
    widths: tuple[int, ...] = (64, 128, 256, 512)  # bottleneck width per stage; output is 4x
    stem_width: int = 64
    stem_stride: int = 2  # of conv1; 4 with the max-pool makes the stem /8 instead of /4
    # Stages whose every bottleneck gets the attention module (GALA unless ``attention`` says
    # otherwise). The paper's placement is conv4_x, which is torchvision's layer3; an empty tuple
    # (or attention "none") gives the plain ResNet.
    gala_layers: tuple[int, ...] = (3,)
    reduction: int = 4  # r in C -> C/r (both branches); the paper uses 4 with conv4_x
    # The released code's sigmoid; the paper writes tanh; "hard" is clamp(1 + z, 0, 2), a gate that
    # can reach exactly 0 (BatchNorm after a gated block rescales any gate that only comes close).
    nonlinearity: str = "sigmoid"
    extra_conv: bool = True  # the released code's 5x5 conv in the middle of the local branch
    combination: str = "both"  # which of a*(G+S) and m*(G*S) enter the gate
    image_size: int = 224
    # The network scales its input to resize x resize pixels first (area interpolation), 0: as given.
    # The shortcut demonstration trains at 112 on two CPU cores (docs/training.md); the attention
    # maps are then at that resolution, and callers' images and human maps stay at 224.
    resize: int = 0
    # Which module the configured stages carry (attention.create_attention), and where: "output"
    # gates the residual branch before the sum (ours, as SE-ResNet does), "input" gates the block's
    # input, which both branches then read (the released gala_tpu ResNet-50). Checkpoints written
    # before these fields existed load with the defaults, which are what they were trained with.
    attention: str = "gala"
    placement: str = "output"
    map_weight: float = 1.0  # lambda of the click-map loss when co-training (docs/training.md)

    def __post_init__(self) -> None:
        """Normalise lists (from a checkpoint or argparse) to tuples and reject impossible values."""
        for name in ("layers", "widths", "gala_layers"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.layers) != 4 or len(self.widths) != 4:
            raise ValueError("layers and widths need one entry per stage, layer1..layer4")
        if not set(self.gala_layers) <= {1, 2, 3, 4}:
            raise ValueError(f"gala_layers must be stage numbers 1..4, not {self.gala_layers}")
        if self.nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}")
        if self.combination not in COMBINATIONS:
            raise ValueError(f"combination must be one of {COMBINATIONS}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}")
        if self.resize < 0:
            raise ValueError(f"resize must be 0 (none) or a side in pixels, not {self.resize}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}")


PRESETS: dict[str, dict[str, Any]] = {
    "gala_resnet50": {},
    "resnet50": {"gala_layers": ()},
    # The released code's placement: GALA on the input of every bottleneck of layer3.
    "gala_resnet50_input": {"placement": "input"},
    "se_resnet50": {"attention": "se", "gala_layers": (1, 2, 3, 4), "reduction": 16},
    "cbam_resnet50": {"attention": "cbam", "gala_layers": (1, 2, 3, 4), "reduction": 16},
    # CPU-friendly partner for the demo set (0.6 M parameters, 1/4 of ResNet-50's widths). A
    # stride-4 conv1 makes the stem /8, so layer2 runs at 14x14, the resolution of the paper's
    # conv4_x in this layout. GALA at 28x28 (layer1) as well cost 25 % more time per step, and
    # the 5x5 conv a third more, for no accuracy the demo needs.
    "gala_small": {
        "num_classes": 10,
        "layers": (1, 2, 2, 1),
        "widths": (16, 32, 64, 128),
        "stem_width": 16,
        "stem_stride": 4,
        "gala_layers": (2,),
        "extra_conv": False,
    },
}


def preset(arch: str, **overrides: Any) -> GALAConfig:
    """Return the named architecture's configuration with some fields replaced."""
    if arch not in PRESETS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(PRESETS)}")
    return replace(GALAConfig(arch=arch, **PRESETS[arch]), **overrides)
