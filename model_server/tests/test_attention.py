"""Tests for the attention factory, the two GALA placements and the parameter counts they give."""

from __future__ import annotations

import pytest
import torch

from model_server.attention import CBAM, SqueezeExcite, create_attention
from model_server.config import preset
from model_server.gala import GALA
from model_server.network import build, load_checkpoint
from model_server.params import counts
from model_server.tests.test_network import randomise_batch_norms
from model_server.tests.test_train import DEMO_CHECKPOINT


def test_the_factory_builds_each_kind_by_name() -> None:
    assert isinstance(create_attention("gala", 16), GALA)
    assert isinstance(create_attention("se", 16), SqueezeExcite)
    assert isinstance(create_attention("cbam", 16), CBAM)
    assert create_attention("none", 16) is None
    with pytest.raises(ValueError, match="attention"):
        create_attention("eca", 16)


@pytest.mark.parametrize("kind", ["se", "cbam"])
def test_se_and_cbam_gate_features_without_a_map(kind: str) -> None:
    module = create_attention(kind, 16, reduction=4)
    features = torch.randn(2, 16, 7, 7)
    gated, gate = module(features)
    assert gated.shape == features.shape
    assert gate is None
    assert (gated.abs() <= features.abs() + 1e-6).all()  # sigmoid gates only shrink


@pytest.mark.parametrize("kind", ["gala", "se", "cbam", "none"])
@pytest.mark.parametrize("placement", ["input", "output"])
def test_every_kind_and_placement_trains_in_the_same_network(kind: str, placement: str) -> None:
    torch.manual_seed(0)
    model = build(preset("gala_small", attention=kind, placement=placement))
    logits, maps = model.forward_with_attention(torch.rand(2, 3, 112, 112))
    assert logits.shape == (2, 10)
    assert len(maps) == (2 if kind == "gala" else 0)  # only GALA's gate is a map to co-train
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_gala_at_the_input_gates_the_block_input_channels() -> None:
    model = build(preset("gala_small", placement="input"))
    first, second = model.layer2
    assert first.gala.add_scale.numel() == 64  # layer1's output, which layer2's first block reads
    assert second.gala.add_scale.numel() == 128


@pytest.mark.parametrize("placement", ["input", "output"])
def test_a_fresh_gala_network_computes_what_the_plain_one_does(placement: str) -> None:
    torch.manual_seed(0)
    plain = build(preset("gala_small", gala_layers=()))
    randomise_batch_norms(plain)
    model = build(preset("gala_small", placement=placement, extra_conv=True))
    model.load_state_dict(plain.state_dict(), strict=False)
    images = torch.rand(2, 3, 112, 112)
    with torch.inference_mode():
        torch.testing.assert_close(model.eval()(images), plain.eval()(images))


def test_parameter_counts_over_resnet50() -> None:
    table = counts()
    plain = table["ResNet-50"]
    assert plain == 25_557_032
    # The released code's input placement over layer3; 128 above the 4,149,766 and
    # 12,752,774 (see docs/training.md: every other term, and the 5x5 conv's 8,603,008, agree).
    assert table["GALA-ResNet-50, input, no 5x5 conv"] - plain == 4_149_894
    assert table["GALA-ResNet-50, input, 5x5 conv"] - plain == 12_752_902
    assert table["GALA-ResNet-50, output, no 5x5 conv"] - plain == 4_741_638
    assert table["GALA-ResNet-50, output, 5x5 conv"] - plain == 14_573_574
    assert table["SE-ResNet-50 (every block, r=16)"] == 28_088_024  # the SE paper's SE-ResNet-50


def test_the_shipped_checkpoint_still_loads_with_the_default_attention_and_placement() -> None:
    model, checkpoint = load_checkpoint(DEMO_CHECKPOINT)
    assert "attention" not in checkpoint["config"]  # written before the fields existed
    assert model.config.attention == "gala"
    assert model.config.placement == "output"
