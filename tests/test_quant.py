"""INT8 preparation, the per-layer INT8 report and QAT, on the real checkpoints and WIDER images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from featherface_mobile.checkpoint import load_model
from featherface_mobile.export.common import model_inputs, sample_images
from featherface_mobile.quant import prepare_for_int8
from featherface_mobile.splits import split_images


def _batches(net, count: int, size: int, split: str = "train") -> list[torch.Tensor]:
    return [torch.from_numpy(b) for b in model_inputs(sample_images(count, split=split), size, net.config.mean_bgr)]


@pytest.mark.parametrize("which", ["retinaface_weights", "v1_weights"])
def test_prepare_for_int8_preserves_the_float_function(which, request):
    net = load_model(request.getfixturevalue(which))
    calib = _batches(net, 4, 320)
    prepared = prepare_for_int8(net, calib, bias_correction=False)
    x = _batches(net, 2, 320, split="eval")
    with torch.no_grad():
        for b in x:
            for ref, got in zip(net(b), prepared(b)):
                scale = float(ref.abs().max())
                assert float((ref - got).abs().max()) / scale < 1e-4


def test_bias_correction_moves_outputs_only_slightly(retinaface_weights):
    net = load_model(retinaface_weights)
    calib = _batches(net, 4, 320)
    plain = prepare_for_int8(net, calib, bias_correction=False)
    corrected = prepare_for_int8(net, calib)
    b = _batches(net, 1, 320, split="eval")[0]
    with torch.no_grad():
        ref, got = plain(b)[0], corrected(b)[0]
    cos = float(torch.nn.functional.cosine_similarity(ref.flatten(), got.flatten(), dim=0))
    assert 0.98 < cos < 1.0  # it does change the biases, by about the INT8 rounding error


@pytest.fixture(scope="module")
def int8_tflite(retinaface_weights, tmp_path_factory):
    pytest.importorskip("onnx2tf")
    from featherface_mobile.export import ExportOptions, export

    out = tmp_path_factory.mktemp("int8")
    with pytest.warns(UserWarning, match="fewer than 100"):
        res = export(retinaface_weights, formats=["tflite"], options=ExportOptions(size=320, int8=True, calib_images=16),
                     out=out, skip_verify=True, log=lambda *_: None)
    return res.artefacts[0].path


def test_int8_export_is_full_integer_with_float_io(int8_tflite):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(int8_tflite))
    assert it.get_input_details()[0]["dtype"] == np.float32
    ops = {d["op_name"] for d in it._get_ops_details()}
    float_ops = ops - {"QUANTIZE", "DEQUANTIZE"}
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    for op in it._get_ops_details():
        if op["op_name"] in float_ops:
            assert all(tensors[i]["dtype"] != np.float32 for i in op["outputs"]), op


def test_report_command_ranks_layers_worst_first(int8_tflite, retinaface_weights, tmp_path):
    from featherface_mobile.quant.cli import quantize

    plot, js = tmp_path / "r.png", tmp_path / "r.json"
    res = CliRunner().invoke(quantize, ["report", str(int8_tflite), "--weights", str(retinaface_weights),
                                        "--images", "2", "--plot", str(plot), "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert "worst first" in res.output and plot.stat().st_size > 1000
    import json

    rep = json.loads(js.read_text())
    sqnr = [t["sqnr_db"] for t in rep["tensors"]]
    assert len(sqnr) > 50 and sqnr == sorted(sqnr)
    assert sqnr[0] < 20 < sqnr[-1]  # some layers lose much more than others
    assert rep["outputs"]["conf"]["cosine_vs_pytorch"] > 0.99


def test_report_rejects_a_float_artefact(tmp_path):
    from featherface_mobile.errors import FeatherfaceError
    from featherface_mobile.quant.report import int8_report

    p = tmp_path / "m.onnx"
    p.write_bytes(b"x")
    with pytest.raises(FeatherfaceError, match="tflite"):
        int8_report(p)


def test_a_few_qat_steps_lower_the_loss(retinaface_weights, wider):
    pytest.importorskip("torchao")
    from featherface_mobile.quant import qat

    net = load_model(retinaface_weights)
    samples = qat.labelled_samples(wider, split_images("train", wider)[:4], 320, net.config.mean_bgr)
    start = qat.float_start(net, [s.batch for s in samples])
    model = qat.prepare_qat(start, samples[0].batch)

    def loss_now() -> float:
        with torch.no_grad():
            total = 0.0
            for s in samples:
                out, target = model(s.batch), start(s.batch)
                total += float(qat.multibox_loss(out, [s.boxes], 320, net.config, teacher=target)
                               + qat.distillation_loss(out, target))
            return total / len(samples)

    before = loss_now()
    qat.train_qat(model, start, samples, steps=16, lr=5e-5)
    assert loss_now() < before
    tuned = qat.qat_weights(model, start)
    # The trained weights go back into the checkpoint layout and load strictly.
    fresh = load_model(retinaface_weights)
    fresh.load_state_dict(qat._unfolded_state(tuned, net))
    b = samples[0].batch
    with torch.no_grad():
        assert float((fresh(b)[0] - tuned(b)[0]).abs().max()) < 1e-3
