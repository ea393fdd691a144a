"""Tests for the GALA module: shapes, the identity at initialisation, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

from model_server.gala import GALA, attention_map

OPTIONS = list(itertools.product(("sigmoid", "tanh", "hard"), ("additive", "multiplicative", "both"), (True, False)))


def randomise_scales(gala: GALA) -> None:
    """Move the gate away from its identity initialisation, as training would."""
    with torch.no_grad():
        for scale in (gala.add_scale, gala.mul_scale):
            if scale is not None:
                scale.normal_(0, 1)


@pytest.mark.parametrize(("nonlinearity", "combination", "extra_conv"), OPTIONS)
def test_gala_shapes_and_gradients(nonlinearity: str, combination: str, extra_conv: bool) -> None:
    torch.manual_seed(0)
    gala = GALA(16, reduction=4, nonlinearity=nonlinearity, combination=combination, extra_conv=extra_conv)
    randomise_scales(gala)
    features = torch.randn(2, 16, 9, 7, requires_grad=True)
    gated, attention = gala(features)
    assert gated.shape == attention.shape == (2, 16, 9, 7)
    assert attention_map(attention).shape == (2, 1, 9, 7)
    assert torch.isfinite(gated).all()
    if nonlinearity == "hard":  # reaches its ends exactly
        assert ((attention >= 0) & (attention <= 2)).all()
    else:
        assert ((attention > 0) & (attention < 2)).all()
    torch.testing.assert_close(gala.attention(features), attention)
    gated.square().sum().backward()
    assert features.grad is not None
    for name, parameter in gala.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("nonlinearity", "combination", "extra_conv"), OPTIONS)
def test_fresh_gala_is_exactly_the_identity(nonlinearity: str, combination: str, extra_conv: bool) -> None:
    gala = GALA(8, nonlinearity=nonlinearity, combination=combination, extra_conv=extra_conv)
    features = torch.randn(3, 8, 5, 5) * 100
    gated, attention = gala(features)
    assert torch.equal(attention, torch.ones_like(attention))
    assert torch.equal(gated, features)


def test_fresh_gala_scales_still_learn() -> None:
    gala = GALA(8)
    gated, _ = gala(torch.randn(2, 8, 6, 6))
    gated.square().sum().backward()
    assert gala.add_scale.grad.abs().sum() > 0
    assert gala.mul_scale.grad.abs().sum() > 0


def test_combination_decides_which_scales_exist() -> None:
    assert GALA(8, combination="additive").mul_scale is None
    assert GALA(8, combination="multiplicative").add_scale is None


def test_attention_map_is_the_channel_mean_of_squares() -> None:
    attention = torch.tensor([[1.0, 2.0], [3.0, 0.5]]).view(1, 2, 1, 2)  # (B, C, H, W)
    expected = torch.tensor([(1 + 9) / 2, (4 + 0.25) / 2]).view(1, 1, 1, 2)
    torch.testing.assert_close(attention_map(attention), expected)
