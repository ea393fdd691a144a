"""Tests for training's starting points (--init, --init-resnet), loss options, logging and resuming."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_server import train
from model_server.config import preset
from model_server.losses import LAB_SCALE, attention_loss, blur_maps, gradient_saliency, harmonization_loss
from model_server.network import build, gala_resnet50, load_checkpoint, resnet50
from model_server.tests.test_network import randomise_batch_norms

TINY = ["--demo", "--n-per-class", "1", "--val-per-class", "1", "--batch-size", "4", "--threads", "1"]
SMALL = ["--eval-bubbles", "10", "--widths", "4", "8", "8", "8", "--stem-width", "8"]


def random_torchvision_resnet50(path: Path) -> dict[str, torch.Tensor]:
    """Write a random state dict under torchvision's resnet50 keys (what a lab has) and return it."""
    torch.manual_seed(1)
    plain = resnet50()
    randomise_batch_norms(plain)
    state = {key: value.clone() for key, value in plain.state_dict().items()}
    torch.save(state, path)
    return state


@pytest.mark.parametrize("placement", ["input", "output"])
def test_init_resnet_starts_gala_as_the_identity_of_the_plain_network(tmp_path: Path, placement: str) -> None:
    path = tmp_path / "resnet50.pth"
    state = random_torchvision_resnet50(path)
    assert "layer3.0.downsample.0.weight" in state and "fc.weight" in state  # torchvision's names
    model = build(preset("gala_resnet50", placement=placement))
    train.initialise(model, train.TrainConfig(init_resnet=str(path)))
    plain = resnet50()
    plain.load_state_dict(state)
    images = torch.rand(2, 3, 96, 96)
    with torch.inference_mode():
        expected = plain.eval()(images)
        logits = model.eval()(images)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


def test_init_resnet_refuses_weights_that_do_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1), "head.weight": torch.zeros(1)}, path)
    with pytest.raises((ValueError, RuntimeError)):
        train.initialise(gala_resnet50(), train.TrainConfig(init_resnet=str(path)))


def test_a_new_number_of_classes_keeps_the_features_and_a_fresh_classifier(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    state = random_torchvision_resnet50(path)
    model = build(preset("gala_resnet50", num_classes=10))
    train.initialise(model, train.TrainConfig(init_resnet=str(path)))
    torch.testing.assert_close(model.conv1.weight, state["conv1.weight"])
    assert model.fc.weight.shape == (10, 2048)


def test_init_fine_tunes_a_checkpoint_of_ours(tmp_path: Path) -> None:
    first = train.main([*TINY, *SMALL, "--epochs", "1", "--out", str(tmp_path / "a.pt")])
    start, _ = load_checkpoint(first)
    model = build(start.config)
    train.initialise(model, train.TrainConfig(init=str(first)))
    for key, value in start.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_every_step_logs_its_loss_terms(tmp_path: Path) -> None:
    argv = [*TINY, *SMALL, "--epochs", "2", "--cotrain", "--map-reduction", "lab", "--map-blur"]
    out = train.main([*argv, "--map-resize", "bilinear", "--no-decay-attention", "--out", str(tmp_path / "m.pt")])
    checkpoint = torch.load(out, weights_only=True)
    history = checkpoint["history"]
    assert [row["step"] for row in history] == [1, 2, 3, 4]  # 10 images: 2 full batches of 4, 2 epochs
    assert all({"loss_class", "loss_map"} <= set(row) for row in history)
    assert checkpoint["train"]["map_reduction"] == "lab"


def test_periodic_evaluation_is_stored_with_its_step(tmp_path: Path) -> None:
    out = train.main([*TINY, *SMALL, "--epochs", "2", "--eval-every", "2", "--out", str(tmp_path / "e.pt")])
    evaluations = torch.load(out, weights_only=True)["evaluations"]
    assert [row["step"] for row in evaluations] == [2]  # the last step's evaluation is the metrics
    assert "top1_whole" in evaluations[0]


def test_a_resumed_run_ends_where_an_uninterrupted_run_ends(tmp_path: Path) -> None:
    out = tmp_path / "run.pt"
    argv = [*TINY, *SMALL, "--epochs", "3", "--cotrain", "--save-every", "3", "--eval-every", "2", "--out", str(out)]
    expected, _ = load_checkpoint(train.main(argv))  # 6 steps, a snapshot after step 3
    snapshot = torch.load(train.resume_path(train.parse_args(argv)[0]), weights_only=True)
    assert snapshot["step"] == 3
    assert set(snapshot) >= {"model", "optimizer", "scheduler", "generator"}
    got, checkpoint = load_checkpoint(train.main([*argv, "--resume"]))  # as if it had stopped there
    assert [row["step"] for row in checkpoint["history"]] == list(range(1, 7))
    for key, value in expected.state_dict().items():
        torch.testing.assert_close(got.state_dict()[key], value, msg=key)


def test_lab_reduction_sums_over_the_batch_and_scales_by_1e_5() -> None:
    torch.manual_seed(0)
    maps = [torch.rand(4, 1, 7, 7)]
    clicks, has_map = torch.rand(4, 1, 28, 28), torch.tensor([True, True, False, True])
    mean = attention_loss(maps, clicks, has_map)
    lab = attention_loss(maps, clicks, has_map, reduction="lab")
    torch.testing.assert_close(lab, LAB_SCALE * 3 * mean)


def test_bilinear_resize_differs_from_area_but_agrees_on_constant_maps() -> None:
    maps, has_map = [torch.rand(1, 1, 7, 7)], torch.tensor([True])
    constant = torch.ones(1, 1, 28, 28)
    torch.testing.assert_close(
        attention_loss(maps, constant, has_map, resize="bilinear"), attention_loss(maps, constant, has_map)
    )
    varied = torch.rand(1, 1, 28, 28)
    assert attention_loss(maps, varied, has_map, resize="bilinear") != attention_loss(maps, varied, has_map)


def test_blur_keeps_mass_and_spreads_a_point() -> None:
    point = torch.zeros(1, 1, 224, 224)
    point[0, 0, 112, 112] = 1.0
    blurred = blur_maps(point)
    torch.testing.assert_close(blurred.sum(), torch.tensor(1.0), atol=1e-4, rtol=1e-4)
    assert blurred[0, 0, 112, 112] < 0.01
    ratio = blurred[0, 0, 112, 132] / blurred[0, 0, 112, 112]
    torch.testing.assert_close(ratio, torch.tensor(0.775), atol=0.01, rtol=0)  # exp(-(20 / 28)^2 / 2)
    assert blurred[0, 0, 112, 140] == 0  # a 49 px kernel reaches 24 px


def test_no_decay_attention_puts_the_gates_in_a_group_without_weight_decay() -> None:
    model = build(preset("gala_small"))
    optimizer = train.make_optimizer(model, train.TrainConfig(decay_attention=False, weight_decay=0.1))
    decays = [group["weight_decay"] for group in optimizer.param_groups]
    assert decays == [0.1, 0.0]
    gates = {id(p) for p in optimizer.param_groups[1]["params"]}
    assert gates == {id(p) for n, p in model.named_parameters() if ".gala." in n}


def test_harmonization_loss_is_zero_for_a_saliency_that_matches_the_map_up_to_scale() -> None:
    clicks = torch.rand(2, 1, 64, 64)
    has_map = torch.tensor([True, True])
    assert harmonization_loss(3 * clicks + 1, clicks, has_map) < 1e-6
    assert harmonization_loss(torch.rand(2, 1, 64, 64), clicks, has_map) > 0.5
    assert harmonization_loss(torch.rand(2, 1, 64, 64), clicks, torch.tensor([False, False])) == 0


def test_harmonization_gradients_reach_the_weights_through_the_saliency() -> None:
    model = build(preset("gala_small", widths=(4, 8, 8, 8), stem_width=8))
    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    labels = torch.tensor([0, 1])
    saliency = gradient_saliency(model(images), images, labels)
    assert saliency.shape == (2, 1, 64, 64)
    harmonization_loss(saliency, torch.rand(2, 1, 64, 64), torch.tensor([True, True])).backward()
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0


def test_a_harmonization_run_logs_its_map_loss(tmp_path: Path) -> None:
    argv = [*TINY, *SMALL, "--epochs", "1", "--cotrain", "--map-loss", "harmonization"]
    out = train.main([*argv, "--out", str(tmp_path / "h.pt")])
    history = torch.load(out, weights_only=True)["history"]
    assert all(row["loss_map"] > 0 for row in history)
