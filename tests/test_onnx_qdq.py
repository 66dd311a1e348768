"""ONNX QDQ INT8 export on the real RetinaFace checkpoint: a QDQ graph, metadata, faces vs PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

from featherface_mobile.export import ExportOptions, export
from featherface_mobile.runtime import load_runner

SIZE = 320


@pytest.fixture(scope="module")
def onnx_int8(retinaface_weights, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("onnx_int8")
    with pytest.warns(UserWarning, match="fewer than 100"):
        res = export(retinaface_weights, formats=["onnx"], options=ExportOptions(size=SIZE, int8=True, calib_images=16),
                     out=out, verify_images=8, keep_failed=True, log=lambda *_: None)
    arts = res.artefacts + res.failed
    assert len(arts) == 1
    return arts[0]


def test_onnx_int8_artefact_is_named_by_precision(onnx_int8):
    assert onnx_int8.path.name == f"retinaface-mnet025_{SIZE}_int8.onnx" and onnx_int8.precision == "int8"
    assert onnx_int8.path.exists() and not list(onnx_int8.path.parent.glob(".*part*"))


def test_onnx_int8_graph_has_qdq_nodes_and_int8_weights(onnx_int8):
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(onnx_int8.path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 20 and ops.count("DequantizeLinear") > 20
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    dq_inputs = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    int8 = {t.name for t in model.graph.initializer if t.data_type == TensorProto.INT8}
    # Every conv reads its weight through a DequantizeLinear of an int8 initializer.
    assert conv_weights and all(dq_inputs.get(w) in int8 for w in conv_weights)
    # The three outputs stay separate, float32, and come out of float ops (no DequantizeLinear at the end).
    outputs = {o.name: o for o in model.graph.output}
    assert list(outputs) == ["loc", "conf", "landms"]
    assert all(o.type.tensor_type.elem_type == TensorProto.FLOAT for o in outputs.values())
    producers = {out: n.op_type for n in model.graph.node for out in n.output}
    assert producers["conf"] == "Softmax"
    assert onnx_int8.bytes < 0.4 * 1.7e6  # the float32 ONNX is ~1.7 MB


def test_onnx_int8_metadata_round_trips(onnx_int8):
    runner = load_runner(onnx_int8.path)
    meta = runner.metadata
    assert meta["model"] == "retinaface-mnet025" and meta["format"] == "onnx" and meta["precision"] == "int8"
    assert meta["input_size"] == [SIZE, SIZE] and meta["outputs"] == ["loc", "conf", "landms"]
    q = meta["quantization"]
    assert q["format"] == "QDQ" and q["per_channel"] is True and q["weights"] == "int8"
    assert q["activations"] in ("uint8", "int8") and q["calibration_images"] == 16
    assert runner.input_size == SIZE
    n = sum((SIZE // s) ** 2 * 2 for s in (8, 16, 32))
    outs = runner(np.zeros((1, 3, SIZE, SIZE), np.float32))
    assert [o.shape for o in outs] == [(1, n, 4), (1, n, 2), (1, n, 10)]


def test_onnx_int8_faces_match_pytorch(onnx_int8):
    v = onnx_int8.verify
    print(f"\nONNX INT8 {SIZE}: {v.summary()}")
    assert v.precision == "int8" and v.gate.startswith("decoded-face F1") and v.images == 8
    assert v.faces_reference >= 5
    # The gate is 0.97 (verify.F1_THRESHOLDS). At 320 the 8 images hold only 9 reference faces (one
    # face moves F1 by ~0.06) and INT8 adds borderline ones: measured F1 0.857 (P 0.75, R 1.0).
    assert v.recall_at_05 >= 0.85 and v.f1 >= 0.8, v.summary()
    assert v.passed == (v.f1 >= 0.97)
    assert v.outputs["conf"].cosine > 0.99 and v.outputs["loc"].cosine > 0.9
