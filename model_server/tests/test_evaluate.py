"""Tests for evaluate: Spearman with ties, and export -> train -> evaluate end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model_server import evaluate, train
from model_server.demo_data import save_demo_set
from model_server.tests.test_export_data import write_export


def test_spearman_handles_ties_and_constant_maps() -> None:
    a = np.array([[0, 0, 1], [2, 2, 3]], dtype=np.float32)
    assert evaluate.spearman(a, a) == pytest.approx(1.0)
    assert evaluate.spearman(a, -a) == pytest.approx(-1.0)
    assert evaluate.spearman(a, np.zeros_like(a)) == 0.0
    np.testing.assert_array_equal(evaluate.average_ranks(np.array([5.0, 1.0, 5.0])), [2.5, 1.0, 2.5])


def test_export_train_evaluate_end_to_end(tmp_path: Path) -> None:
    images = save_demo_set(tmp_path / "images", n_per_class=2)
    write_export(tmp_path / "export", images, "hdf5")
    out = tmp_path / "model.pt"
    common = ["--maps", str(tmp_path / "export"), "--images", str(tmp_path / "images")]
    argv = [*common, "--cotrain", "--epochs", "1", "--batch-size", "4", "--threads", "1", "--eval-bubbles", "10"]
    train.main([*argv, "--widths", "4", "8", "8", "8", "--val-fraction", "0.3", "--out", str(out)])
    result = evaluate.main([str(out), *common, "--eval-bubbles", "10"])
    assert result["ceiling"] == pytest.approx(0.8)  # the export's split-half Spearman
    assert 0 <= result["top1"] <= result["top5"] <= 1
    for kind in ("attention", "saliency"):
        assert -1 / 0.8 <= result[kind]["alignment"] <= 1 / 0.8
        assert result[kind]["maps"] > 0
        assert set(result[kind]["per_class"]) <= set(torch.load(out, weights_only=True)["classes"])
    # The Harmonization protocol: the same saliency Spearman over that benchmark's fixed human ceiling.
    assert result["saliency"]["harmonization"] == pytest.approx(result["saliency"]["spearman"] / 0.65753)
    assert "harmonization" not in result["attention"]
    assert json.loads((tmp_path / "model.eval.json").read_text())["top1"] == result["top1"]
    assert (tmp_path / "model.eval.png").stat().st_size > 0
    assert torch.load(out, weights_only=True)["metrics"]["evaluation"]["top1"] == result["top1"]
