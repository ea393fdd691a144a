"""Tests for the ONNX export: a checked model whose outputs match torch's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from model_server.export_onnx import export
from model_server.network import gala_small, save_checkpoint


# torch.export warns about its own pytree internals; nothing to act on here.
@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
def test_exported_model_matches_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = gala_small()
    with torch.no_grad():  # a gate away from the identity, so the maps carry information
        for name, parameter in model.named_parameters():
            if name.endswith("_scale"):
                parameter.normal_(0, 1)
    checkpoint = tmp_path / "model.pt"
    classes = [f"c{k}" for k in range(10)]
    save_checkpoint(checkpoint, model, model.config, classes=classes, version="v7")
    names = export(checkpoint, tmp_path / "model.onnx")
    assert names[0] == "logits"

    proto = onnx.load(tmp_path / "model.onnx")
    onnx.checker.check_model(proto)
    metadata = {prop.key: prop.value for prop in proto.metadata_props}
    assert json.loads(metadata["classes"]) == classes
    assert metadata["version"] == "v7"

    images = torch.rand(3, 3, 224, 224)  # a batch size other than the export's
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(names, {"images": images.numpy()})
    with torch.inference_mode():
        logits, maps = model.eval().forward_with_attention(images)
    assert names[1:] == [f"attention_{index}" for index in range(len(maps))]  # one map per GALA block
    for got, expected in zip(outputs, [logits, *maps], strict=True):
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-4)
