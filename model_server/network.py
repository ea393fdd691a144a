"""GALA-ResNet: torchvision's readable ResNet with GALA modules inside the bottlenecks.

Paper: Linsley et al., "Learning what and where to attend", ICLR 2019. The layout and parameter
names follow torchvision's ``resnet50`` (``conv1 bn1 layer1..4 fc``, stride on the 3x3 conv), so
a torchvision ResNet-50 state dict loads with ``strict=False`` and only GALA keys missing; the
GALA gates start as the identity (see ``gala.py``), so the loaded network computes exactly what
the plain one did.

Inputs are RGB at 224x224, floats in [0, 1] or uint8 pixels (what ``reveal.reveal_batch``
renders); the ImageNet normalisation torchvision weights expect happens inside ``forward``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from model_server.attention import create_attention
from model_server.config import GALAConfig, preset
from model_server.gala import GALA, attention_map

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """Return a 3x3 convolution with padding and no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """Return a 1x1 convolution with no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (1x1, strided 3x3, 1x1) with an optional attention module (GALA, SE, CBAM)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, config: GALAConfig, gala: bool) -> None:
        super().__init__()
        width = planes * self.expansion
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, width)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != width:
            self.downsample = nn.Sequential(conv1x1(inplanes, width, stride), nn.BatchNorm2d(width))
        # "output": like SE in SE-ResNet, the gate acts on the residual branch before the identity is
        # added. "input": it gates the block's input, which the residual branch and the shortcut
        # then both read (the released gala_tpu code). Either way a fresh GALA is the identity.
        # The attribute is ``gala`` for GALA (the key every existing checkpoint uses), else ``attn``.
        self.placement = config.placement
        module = None
        if gala:
            channels = inplanes if config.placement == "input" else width
            module = create_attention(
                config.attention,
                channels,
                reduction=config.reduction,
                nonlinearity=config.nonlinearity,
                extra_conv=config.extra_conv,
                combination=config.combination,
            )
        self.gala = module if config.attention == "gala" else None
        self.attn = module if config.attention != "gala" else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the block output and its GALA gate (None without GALA)."""
        module = self.gala if self.gala is not None else self.attn
        attention = None
        if module is not None and self.placement == "input":
            x, attention = module(x)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if module is not None and self.placement == "output":
            out, attention = module(out)
        return self.relu(out + identity), attention


class GALANet(nn.Module):
    """A four-stage bottleneck ResNet whose configured stages carry GALA modules."""

    def __init__(self, config: GALAConfig) -> None:
        super().__init__()
        self.config = config
        # (x - mean) / std as x * scale + shift: one fused op, 10x faster on the CPU than a division.
        # Non-persistent: the state dict keeps exactly torchvision's keys.
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / std, persistent=False)
        self.register_buffer("shift", -torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) / std, persistent=False)
        # 8-bit pixels (0..255) are normalised in the same single op: the server renders uint8, a
        # quarter of the bytes of a float input, and skips a pass that only divided by 255.
        self.register_buffer("scale_8bit", 1.0 / (255.0 * std), persistent=False)
        self.inplanes = config.stem_width
        self.conv1 = nn.Conv2d(3, config.stem_width, 7, config.stem_stride, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(config.stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(1, stride=1)
        self.layer2 = self._make_layer(2, stride=2)
        self.layer3 = self._make_layer(3, stride=2)
        self.layer4 = self._make_layer(4, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.inplanes, config.num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d) and module.bias is None:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(self, stage: int, stride: int) -> nn.Sequential:
        """Build one stage (``layer1``..``layer4``) of bottleneck blocks."""
        planes, gala = self.config.widths[stage - 1], stage in self.config.gala_layers
        blocks = []
        for index in range(self.config.layers[stage - 1]):
            blocks.append(Bottleneck(self.inplanes, planes, stride if index == 0 else 1, self.config, gala))
            self.inplanes = planes * Bottleneck.expansion
        return nn.Sequential(*blocks)

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return logits (B, classes) and one attention map (B, 1, H, W) per GALA block, in order."""
        return self._run(x, keep_maps=True)

    def forward(
        self, x: torch.Tensor, with_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Return logits (B, classes) for images (B, 3, H, W): floats in [0, 1] or uint8 pixels.

        ``with_attention``: return ``forward_with_attention``'s pair instead (what training calls
        through a DistributedDataParallel wrapper, which only wraps ``forward``).
        """
        logits, maps = self._run(x, keep_maps=with_attention)
        return (logits, maps) if with_attention else logits

    def _run(self, x: torch.Tensor, *, keep_maps: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        # ImageNet normalisation, of floats in [0, 1] or of 8-bit pixels.
        x = torch.addcmul(self.shift, x, self.scale_8bit if x.dtype == torch.uint8 else self.scale)
        if self.config.resize and x.shape[-2:] != (self.config.resize, self.config.resize):
            x = F.interpolate(x, size=(self.config.resize, self.config.resize), mode="area")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        maps = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:  # an explicit loop, not hooks, so the maps are a return value
                x, attention = block(x)
                if keep_maps and attention is not None:
                    maps.append(attention_map(attention))
        logits = self.fc(torch.flatten(self.avgpool(x), 1))
        return logits, maps


def attention_shapes(config: GALAConfig, size: int = 224) -> list[tuple[int, int]]:
    """Return (H, W) of each attention map forward_with_attention returns, in order, without running the network.

    The serving metadata declares one output per GALA block; this is the same arithmetic as the layers':
    the input scaled to ``config.resize`` (if set), conv1 (7x7, padding 3, stride s), the 3x3/2 max-pool,
    then a stride-2 3x3 conv at the start of layer2..4. At the "input" placement the first block of a
    stage gates its input, still at the previous stage's resolution.
    """
    side = config.resize or size
    side = (side + 2 * 3 - 7) // config.stem_stride + 1
    side = (side - 1) // 2 + 1  # the max-pool
    shapes = []
    for stage in range(1, 5):
        before = side
        if stage > 1:
            side = (side - 1) // 2 + 1
        if stage in config.gala_layers and config.attention == "gala":
            first = before if config.placement == "input" else side
            shapes += [(first, first)] + [(side, side)] * (config.layers[stage - 1] - 1)
    return shapes


def build(config: GALAConfig) -> GALANet:
    """Build a freshly initialised network from its configuration."""
    return GALANet(config)


def gala_resnet50(num_classes: int = 1000) -> GALANet:
    """GALA-ResNet-50 with GALA in every bottleneck of layer3 (conv4_x), r = 4, as in the paper."""
    return build(preset("gala_resnet50", num_classes=num_classes))


def resnet50(num_classes: int = 1000) -> GALANet:
    """Plain ResNet-50 (no GALA), parameter-compatible with torchvision's."""
    return build(preset("resnet50", num_classes=num_classes))


def gala_small(num_classes: int = 10) -> GALANet:
    """Small CPU-friendly GALA-ResNet for the demo image set."""
    return build(preset("gala_small", num_classes=num_classes))


def save_checkpoint(
    path: Path,
    model: GALANet,
    config: GALAConfig,
    *,
    classes: list[str],
    version: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a self-describing checkpoint: weights, config, class names, version and metrics."""
    checkpoint = {
        "model": model.state_dict(),
        "config": asdict(config),
        "classes": list(classes),
        "version": version,
        "metrics": {},
        **(extra or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: a server loading the file never sees half of it.
    partial = path.with_name(path.name + ".partial")
    torch.save(checkpoint, partial)
    os.replace(partial, path)
    logger.info("saved checkpoint %s (version %s)", path, version)


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[GALANet, dict]:
    """Rebuild a network from a checkpoint alone; return it in eval mode with the checkpoint dict."""
    # weights_only: checkpoints come from researchers' uploads, and pickles can run code.
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    config = GALAConfig(**checkpoint["config"])
    if len(checkpoint["classes"]) != config.num_classes:
        raise ValueError(f"{path}: {len(checkpoint['classes'])} class names for {config.num_classes}")
    model = build(config).to(device)
    model.load_state_dict(checkpoint["model"])
    logger.info("loaded checkpoint %s (%s, version %s)", path, config.arch, checkpoint["version"])
    return model.eval(), checkpoint


def configure_gates(model: nn.Module, *, from_maps_only: bool = False, keep_logits: bool = False) -> None:
    """Set how every GALA gate of ``model`` learns (see ``GALA.gate_from_maps_only``, ``GALA.keep_logits``)."""
    for module in model.modules():
        if isinstance(module, GALA):
            module.gate_from_maps_only, module.keep_logits = from_maps_only, keep_logits


def gate_logits(model: nn.Module) -> list[torch.Tensor]:
    """Return the last forward's gate logits (B, C, h, w) of every GALA block, in the order of its maps.

    Needs ``configure_gates(model, keep_logits=True)`` before that forward.
    """
    logits = [module.last_logits for module in model.modules() if isinstance(module, GALA)]
    if any(value is None for value in logits):
        raise RuntimeError("no gate logits kept: call configure_gates(model, keep_logits=True) before the forward")
    return logits


def attention_parameter_names(model: nn.Module) -> set[str]:
    """Return the names of the attention modules' parameters (``.gala.`` or ``.attn.`` in the name)."""
    return {name for name, _ in model.named_parameters() if ".gala." in name or ".attn." in name}


def load_backbone(model: GALANet, state: dict[str, torch.Tensor], *, source: str = "weights") -> list[str]:
    """Load a plain or GALA network's weights (torchvision's key format) into ``model``.

    Attention parameters the state lacks keep their initialisation (the identity, for GALA), and a
    classifier of another number of classes is skipped, so fine-tuning on new classes starts from
    the features. Anything else missing or left over is an error: a silently half-loaded network
    would train from noise. Return the names left at their initialisation.
    """
    own = model.state_dict()
    state = dict(state)
    for key in ("fc.weight", "fc.bias"):
        if key in state and key in own and state[key].shape != own[key].shape:
            logger.info(
                "%s: %s has shape %s, not %s; keeping a fresh classifier", source, key, state[key].shape, own[key].shape
            )
            del state[key]
    result = model.load_state_dict(state, strict=False)
    attention = {key for key in own if ".gala." in key or ".attn." in key}
    missing = [key for key in result.missing_keys if key not in attention and not key.startswith("fc.")]
    if result.unexpected_keys or missing:
        raise ValueError(f"{source}: unexpected keys {result.unexpected_keys[:5]}, missing keys {missing[:5]}")
    return list(result.missing_keys)
