"""Tests for GALA-ResNet: shapes, torchvision compatibility, identity at load, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from model_server.config import PRESETS, GALAConfig, preset
from model_server.network import (
    attention_shapes,
    build,
    gala_resnet50,
    gala_small,
    load_checkpoint,
    resnet50,
    save_checkpoint,
)
from model_server.params import count


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize(
    ("config", "map_sizes"),
    [
        (preset("gala_small"), [14, 14]),  # the two blocks of layer2
        (preset("gala_small", gala_layers=(1, 2), extra_conv=True), [28, 14, 14]),
        (preset("gala_small", gala_layers=(1, 4), stem_stride=2), [56, 7]),
        (preset("gala_small", gala_layers=(3,), combination="additive", extra_conv=False), [7, 7]),
        (preset("gala_small", gala_layers=(), nonlinearity="tanh"), []),
    ],
)
def test_logits_and_one_map_per_gala_block(config: GALAConfig, map_sizes: list[int]) -> None:
    model = build(config)
    logits, maps = model.forward_with_attention(torch.rand(2, 3, 224, 224))
    assert logits.shape == (2, config.num_classes)
    assert [m.shape for m in maps] == [(2, 1, size, size) for size in map_sizes]
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(m).all() for m in maps)


def test_resnet50_matches_torchvision_names_and_size() -> None:
    model = resnet50()
    keys = model.state_dict().keys()
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight", "fc.bias"} <= keys
    assert "layer4.2.bn3.num_batches_tracked" in keys
    assert count(model) == 25_557_032  # torchvision's resnet50()
    assert not any(".gala." in key for key in keys)


def randomise_batch_norms(model: nn.Module) -> None:
    """Give every BatchNorm non-trivial statistics, as a trained network would have."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)


def test_gala_resnet50_loading_resnet50_weights_computes_the_same_logits() -> None:
    plain = resnet50()
    randomise_batch_norms(plain)
    model = gala_resnet50()
    result = model.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys
    assert all(key.startswith("layer3.") and ".gala." in key for key in result.missing_keys)
    images = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        expected = plain.eval()(images)
        logits, maps = model.eval().forward_with_attention(images)
    assert (logits - expected).abs().max() < 1e-4
    assert len(maps) == 6  # every bottleneck of conv4_x


def test_checkpoint_round_trip_gives_the_same_logits(tmp_path: Path) -> None:
    model = gala_small()
    randomise_batch_norms(model)
    path = tmp_path / "nested" / "model.pt"
    classes = [f"class{k}" for k in range(10)]
    metrics = {"top1_whole": 0.5}
    save_checkpoint(path, model, model.config, classes=classes, version="v1", extra={"metrics": metrics})
    loaded, checkpoint = load_checkpoint(path)
    assert not loaded.training
    assert loaded.config == model.config
    assert checkpoint["classes"] == classes
    assert checkpoint["version"] == "v1"
    assert checkpoint["metrics"] == metrics
    images = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(images), model.eval()(images))


def test_tiny_overfit_reduces_the_loss() -> None:
    model = gala_small()
    # 112 px keeps the test fast; the network is convolutional and pools globally.
    images, labels = torch.rand(4, 3, 112, 112), torch.tensor([0, 1, 2, 3])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_invalid_configs_are_rejected() -> None:
    with pytest.raises(ValueError, match="nonlinearity"):
        GALAConfig(nonlinearity="relu")
    with pytest.raises(ValueError, match="stage"):
        GALAConfig(gala_layers=(5,))
    with pytest.raises(ValueError, match="unknown arch"):
        preset("vgg16")


@pytest.mark.parametrize("resize", [0, 112])
@pytest.mark.parametrize("arch", sorted(PRESETS))
def test_attention_shapes_are_those_of_the_maps_the_network_returns(arch: str, resize: int) -> None:
    config = preset(arch, widths=(4, 8, 8, 16), stem_width=8, resize=resize)
    with torch.inference_mode():
        _, maps = build(config).eval().forward_with_attention(torch.zeros(1, 3, 224, 224))
    assert attention_shapes(config) == [tuple(gate.shape[-2:]) for gate in maps]
