"""Tests for the gate loss and for gates that learn from the maps alone (docs/training.md, "Co-training losses")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_server import train
from model_server.config import preset
from model_server.losses import gate_loss, relevance
from model_server.network import build, configure_gates, gate_logits
from model_server.tests.test_training_options import SMALL, TINY

OBJECT = (slice(None), slice(None), slice(2, 6), slice(2, 6))


def object_map() -> torch.Tensor:
    maps = torch.zeros(1, 1, 8, 8)
    maps[OBJECT] = 1.0
    return maps


def logits_where(shut: float, opened: float) -> torch.Tensor:
    """Gate logits z (1, 3, 8, 8): ``opened`` over the object, ``shut`` around it."""
    z = torch.full((1, 3, 8, 8), shut)
    z[OBJECT] = opened
    return z


def test_relevance_is_the_map_scaled_to_peak_one_at_the_layer_size() -> None:
    maps = torch.zeros(1, 1, 4, 4)
    maps[..., :2, :2] = 3.0
    torch.testing.assert_close(relevance(maps, (2, 2)), torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]))


def test_a_gate_shut_off_the_map_and_open_on_it_costs_nothing() -> None:
    assert gate_loss([logits_where(shut=-1.5, opened=0.0)], object_map(), torch.tensor([True])) == 0


def test_a_gate_open_off_the_map_or_shut_on_it_costs() -> None:
    has_map = torch.tensor([True])
    assert gate_loss([logits_where(shut=0.0, opened=0.0)], object_map(), has_map) > 0  # the background open
    assert gate_loss([logits_where(shut=-1.5, opened=-1.5)], object_map(), has_map) > 0  # the object shut


def test_a_gate_shut_by_mistake_over_the_object_still_gets_a_gradient_to_reopen() -> None:
    z = logits_where(shut=-1.5, opened=-3.0).requires_grad_()  # clamp(1 + z) is 0 there: no gradient through it
    gate_loss([z], object_map(), torch.tensor([True])).backward()
    assert bool((z.grad[OBJECT] < 0).all())  # descending the gradient raises z over the object


def test_where_people_looked_a_little_the_gate_is_only_asked_to_open() -> None:
    fringe = torch.full((1, 1, 8, 8), 0.5)  # half the peak, everywhere but the object
    fringe[OBJECT] = 1.0
    half_open = [logits_where(shut=-0.5, opened=0.0)]
    assert gate_loss(half_open, fringe, torch.tensor([True]), shut_below=0.3) > 0  # open it further
    z = half_open[0].clone().requires_grad_()
    gate_loss([z], fringe, torch.tensor([True]), shut_below=0.3).backward()
    assert bool((z.grad <= 0).all())  # never towards shut


def test_images_without_a_map_add_nothing_to_the_gate_loss() -> None:
    assert gate_loss([logits_where(0.0, -3.0)], object_map(), torch.tensor([False])) == 0


def hard_gala(**overrides: object) -> torch.nn.Module:
    config = preset("gala_small", num_classes=3, widths=(4, 8, 8, 8), stem_width=8, nonlinearity="hard", **overrides)
    torch.manual_seed(0)
    return build(config)


def gate_gradient_of_the_classification(from_maps_only: bool) -> float:
    model = hard_gala(gala_layers=(1, 2), placement="input")
    configure_gates(model, from_maps_only=from_maps_only)
    logits, _ = model(torch.rand(2, 3, 64, 64), with_attention=True)
    logits[:, 0].sum().backward()
    return sum(float(p.grad.abs().sum()) for n, p in model.named_parameters() if ".gala." in n and p.grad is not None)


def test_gates_that_learn_from_the_maps_alone_get_no_gradient_from_the_classification() -> None:
    assert gate_gradient_of_the_classification(from_maps_only=False) > 0
    assert gate_gradient_of_the_classification(from_maps_only=True) == 0


def test_detached_gates_still_shape_the_forward_and_learn_from_the_map_loss() -> None:
    model = hard_gala(gala_layers=(1, 2), placement="input")
    images = torch.rand(2, 3, 64, 64)
    for block in model.layer1:
        torch.nn.init.normal_(block.gala.add_scale)  # a gate that is not the identity
    before = model.eval()(images)
    configure_gates(model, from_maps_only=True, keep_logits=True)
    torch.testing.assert_close(model(images), before)  # the same forward: only gradients differ
    model.train()
    model(images, with_attention=True)
    loss = gate_loss(gate_logits(model), torch.rand(2, 1, 64, 64), torch.tensor([True, True]))
    loss.backward()
    assert model.layer1[0].gala.add_scale.grad.abs().sum() > 0


def test_gate_logits_without_keeping_them_is_a_clear_error() -> None:
    model = hard_gala().eval()
    model(torch.rand(1, 3, 64, 64))
    with pytest.raises(RuntimeError, match="keep_logits=True"):
        gate_logits(model)


def test_a_gate_loss_run_that_learns_from_the_maps_logs_its_map_loss(tmp_path: Path) -> None:
    argv = [*TINY, *SMALL, "--epochs", "1", "--cotrain", "--map-loss", "gate", "--nonlinearity", "hard"]
    out = train.main([*argv, "--gate-learns-from", "maps", "--out", str(tmp_path / "g.pt")])
    history = torch.load(out, weights_only=True)["history"]
    assert all(row["loss_map"] > 0 for row in history)


def test_during_the_gate_warm_up_only_the_map_loss_trains_and_the_classifier_learns_after_it(tmp_path: Path) -> None:
    argv = [*TINY, *SMALL, "--cotrain", "--map-loss", "gate", "--nonlinearity", "hard", "--gate-learns-from", "maps"]
    start = train.main([*argv, "--epochs", "1", "--out", str(tmp_path / "start.pt")])
    # Four steps from that start, three of them the warm-up; no weight decay, so a parameter
    # without a gradient stays exactly as it was. The snapshot is the model after step 3.
    out = tmp_path / "warm.pt"
    flags = ["--epochs", "2", "--gate-warmup-steps", "3", "--weight-decay", "0", "--save-every", "1"]
    train.main([*argv, *flags, "--init", str(start), "--out", str(out)])
    before = torch.load(start, weights_only=True)["model"]
    warmed = torch.load(out.with_name(out.name + ".resume.pt"), weights_only=True)["model"]
    after = torch.load(out, weights_only=True)["model"]
    assert torch.equal(warmed["fc.weight"], before["fc.weight"])  # the classifier waits for the warm-up
    gates = [key for key in before if ".gala." in key and key.endswith("add_scale")]
    assert gates and any(not torch.equal(warmed[key], before[key]) for key in gates)  # the gates learn meanwhile
    assert not torch.equal(after["fc.weight"], before["fc.weight"])  # and the classifier from step 4 on


def test_a_gate_warm_up_needs_co_training_and_must_leave_steps_to_classify() -> None:
    with pytest.raises(ValueError, match="--gate-warmup-steps trains the map loss alone at first: it needs --cotrain"):
        train.main([*TINY, *SMALL, "--epochs", "1", "--gate-warmup-steps", "1", "--out", "/nonexistent/x.pt"])
    with pytest.raises(ValueError, match="--gate-warmup-steps 1000 leaves none of the"):
        train.main(
            [*TINY, *SMALL, "--epochs", "1", "--cotrain", "--gate-warmup-steps", "1000", "--out", "/nonexistent/x.pt"]
        )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--map-loss", "gate"], "--nonlinearity hard"),
        (["--map-loss", "gaze"], "--map-loss must be one of"),
        (["--gate-learns-from", "maps", "--map-loss", "rrr"], "--map-loss gala or gate"),
        (["--gate-learns-from", "everything"], "--gate-learns-from must be one of"),
        (["--gate-shut-below", "0"], "--gate-shut-below must be in"),
        (["--gate-warmup-steps", "-1"], "--gate-warmup-steps must be 0 or more"),
    ],
)
def test_co_training_options_that_cannot_work_together_are_refused_by_name(flags: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train.main([*TINY, *SMALL, "--epochs", "1", "--cotrain", *flags, "--out", "/nonexistent/x.pt"])
