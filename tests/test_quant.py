"""INT8 preparation, the per-layer INT8 report and QAT, on the real checkpoints and WIDER images."""
from __future__ import annotations

import json
import subprocess
import sys

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


def test_float_twin_dequantizes_a_shared_constant_once_per_tensor(int8_tflite):
    """Two INT8 tensors may share one constant buffer (V1's graphs do): each gets its own float copy,
    with its own scale. Rewriting the shared buffer in place dequantized the float bytes again for the
    second tensor, 4x larger each time (the report of V1 at 640 ran out of 24 GB)."""
    from featherface_mobile.export import tflite_graph
    from featherface_mobile.quant.report import float_twin

    model = tflite_graph.read(int8_tflite.read_bytes())
    sg = model.subgraphs[0]
    by_shape: dict[tuple, list[int]] = {}
    for i, t in enumerate(sg.tensors):
        if t.type == tflite_graph.schema().TensorType.INT8 and tflite_graph.is_constant(model, t):
            by_shape.setdefault(tuple(t.shape), []).append(i)
    a, b = next(v for v in by_shape.values() if len(v) > 1)[:2]
    sg.tensors[b].buffer = sg.tensors[a].buffer  # b now holds a's INT8 values, with b's own scales
    raw = np.array(model.buffers[sg.tensors[a].buffer].data, dtype=np.uint8).view(np.int8).astype(np.float32)
    twin = tflite_graph.read(float_twin(tflite_graph.write(model))[0])
    for i in (a, b):
        q = sg.tensors[i].quantization
        shape = [-1 if d == q.quantizedDimension else 1 for d in range(len(sg.tensors[i].shape))]
        want = (raw.reshape(sg.tensors[i].shape) - np.asarray(q.zeroPoint).reshape(shape)) * np.asarray(q.scale).reshape(shape)
        t = twin.subgraphs[0].tensors[i]
        got = np.array(twin.buffers[t.buffer].data, dtype=np.uint8).view(np.float32).reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_report_command_ranks_layers_worst_first(int8_tflite, retinaface_weights, tmp_path):
    from featherface_mobile.cli import main

    plot, js = tmp_path / "r.png", tmp_path / "r.json"
    res = CliRunner().invoke(main, ["quantize", "report", str(int8_tflite), "--weights", str(retinaface_weights),
                                    "--images", "2", "--plot", str(plot), "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert "worst own SQNR first" in res.output and plot.stat().st_size > 1000
    import json

    rep = json.loads(js.read_text())
    own = [t["own_sqnr_db"] for t in rep["tensors"]]
    assert len(own) > 50 and own == sorted(own)
    assert own[-1] - own[0] > 10  # some tensors' INT8 steps lose much more than others
    accumulated = [t["sqnr_db"] for t in rep["tensors"]]
    assert min(accumulated) < 20 < max(accumulated)  # and the signal left falls along the network
    assert rep["outputs"]["conf"]["cosine_vs_pytorch"] > 0.99


def _layer_tensors(tflite, weight: torch.Tensor) -> tuple[set[int], set[int]]:
    """The TFLite tensors of one PyTorch conv + BN + activation layer: the output of the CONV_2D whose filter
    is `weight` (up to BN folding's per-channel scale) and of the activation right after it; and the
    outputs of the ops that read that activation."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tflite))
    it.allocate_tensors()
    ops = it._get_ops_details()
    want = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).double().numpy()  # OHWI, as TFLite stores it
    for op in ops:
        if op["op_name"] != "CONV_2D":
            continue
        got = it.get_tensor(op["inputs"][1]).astype(np.float64)
        if got.size != want.size or got.shape[0] != want.shape[0]:
            continue
        got = got.reshape(want.shape)
        cos = np.abs((got * want).sum(1)) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1) + 1e-30)
        if cos.min() > 0.99:
            out = op["outputs"][0]
            act = [o["outputs"][0] for o in ops if out in o["inputs"] and o["op_name"] in ("RELU", "LEAKY_RELU")]
            fed = {o["outputs"][0] for o in ops if set(act) & set(o["inputs"])}
            return {out, *act}, fed
    raise AssertionError("no CONV_2D in the artefact has the weights of the broken layer")


def test_report_ranks_a_layer_with_a_few_loud_output_channels_first(retinaface_weights, tmp_path):
    """FPN output1 (1x1 conv + BN + LeakyReLU, stride 8) with 2 of its 64 output channels' weights x10.

    Not all of its weights x10: INT8 then reproduces the scaled layer faithfully (its scale grows with
    it; measured on ssh1.conv3X3: its own SQNR stays at 32-38 dB), so there is nothing for an INT8
    report to find. A few loud channels are what breaks a layer for INT8: TFLite activations have one
    scale per tensor, the loud channels set it and the other 62 are rounded on a 7.6x (conv) / 9.4x
    (LeakyReLU) coarser step. On the
    intact model this layer ranks 66th of 123 (71st at 160); broken, its activation ranks 1st (19.3 dB),
    and its conv and the FPN add it feeds (which carries the same loud channels: 20.8-21.9 dB, the order of
    those two moves with changes elsewhere in the graph) 2nd and 3rd, 5 dB below any other tensor. The
    accumulated SQNR (INT8 vs float twin) ranks it 27th: it is lowest at the heads whatever the cause.
    """
    from featherface_mobile.export import ExportOptions, export
    from featherface_mobile.quant.report import int8_report

    state = torch.load(retinaface_weights, map_location="cpu", weights_only=True)
    state["fpn.output1.0.weight"][:2] *= 10
    broken = tmp_path / "retinaface_fpn1_loud.pth"
    torch.save(state, broken)
    with pytest.warns(UserWarning, match="fewer than 100"):  # 160 px and 16 images keep the test short
        res = export(broken, formats=["tflite"], options=ExportOptions(size=160, int8=True, calib_images=16),
                     out=tmp_path, skip_verify=True, log=lambda *_: None)
    artefact = res.artefacts[0].path
    rep = int8_report(artefact, broken, images=4)
    layer, fed = _layer_tensors(artefact, state["fpn.output1.0.weight"])
    lead = layer | (fed & {t.index for t in rep.tensors})  # the report ranks quantized tensors only
    assert len(layer) == 2 and rep.tensors[0].index in layer, rep.table(5)
    assert {t.index for t in rep.tensors[:len(lead)]} == lead, rep.table(5)
    # Clear of everything else.
    others = [t.own_sqnr_db for t in rep.tensors if t.index not in lead]
    assert max(t.own_sqnr_db for t in rep.tensors if t.index in layer) < min(others) - 3, rep.table(5)


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


def test_qat_refuses_images_without_ground_truth_in_one_line(wider):
    from featherface_mobile.errors import FeatherfaceError
    from featherface_mobile.quant import qat

    names = split_images("train", wider)[:2] + ["not_in_wider.jpg"]
    with pytest.raises(FeatherfaceError, match=r"not_in_wider.jpg \(and 0 more\) has no ground truth"):
        qat.labelled_samples(wider, names, 320, (104, 117, 123))


def test_qat_keeps_the_float_groups_float_in_training(retinaface_weights):
    """`quantize qat --int8-float G` trains what the export runs: the convs of G get no fake quantization
    (on RetinaFace, backbone8's 12 convs of stage1 and its FPN lateral conv; heads' 9 head convs), every
    other conv does."""
    pytest.importorskip("torchao")
    from featherface_mobile.quant import qat

    net = load_model(retinaface_weights)
    x = _batches(net, 1, 320)[0]
    start = qat.float_start(net, [x])

    def float_convs(groups: tuple[str, ...]) -> tuple[list[str], int]:
        graph = qat.prepare_qat(start, x, groups).graph
        convs = [n for n in graph.nodes if n.op == "call_function" and "conv2d" in str(n.target)]
        plain = [list(n.meta["nn_module_stack"].values())[-1][0] for n in convs if n.args[1].op != "call_module"]
        return plain, len(convs)

    assert float_convs(()) == ([], 56)
    backbone8, _ = float_convs(("backbone8",))
    assert len(backbone8) == 12 and all(p.startswith(("body.stage1", "fpn.output1")) for p in backbone8), backbone8
    heads, _ = float_convs(("heads",))
    assert len(heads) == 9 and all(p.split(".")[0].endswith("Head") for p in heads), heads


def test_qat_artefacts_carry_the_learned_ranges_and_run_in_litert(retinaface_weights, wider, tmp_path):
    """`quantize qat` end to end: a few steps on real images, then INT8 TFLite and ONNX QDQ (the
    stride-2 ops kept float, `--int8-float stride2`) whose activation ranges are the QAT graph's; the
    TFLite one runs in the LiteRT interpreter and finds the faces the QAT float weights find."""
    pytest.importorskip("torchao")
    pytest.importorskip("onnx2tf")
    import onnx

    from featherface_mobile.detect import read_image
    from featherface_mobile.export.tflite_format import TFLiteRunner, read_metadata
    from featherface_mobile.quant.learned import LearnedRanges
    from featherface_mobile.quant.qat import quantization_aware_training

    res = quantization_aware_training(retinaface_weights, data=wider, steps=6, size=320, out=tmp_path,
                                      formats=("tflite", "onnx"), int8_float=("stride2",), log=lambda *_: None)
    learned = LearnedRanges.load(res.ranges)
    assert len(learned.ranges) > 50 and learned.reference.shape == (1, 3, 320, 320)
    by_suffix = {a.path.suffix: a for a in res.artefacts}
    quantization = read_metadata(by_suffix[".tflite"].path)["quantization"]
    assert quantization["float_groups"] == ["stride2"] and quantization["float_ops"] > 0
    tfl = quantization["learned_ranges"]
    assert tfl["used"] >= 0.8 * tfl["learned"], tfl
    qdq = json.loads({p.key: p.value for p in onnx.load(str(by_suffix[".onnx"].path)).metadata_props}["featherface"])
    assert qdq["quantization"]["learned_ranges"]["used"] >= 0.9 * len(learned.ranges)
    for art in res.artefacts:  # against the QAT float weights (a 0.97 gate on ~10 faces is one face; 6 steps)
        assert art.verify.f1 >= 0.85, art.verify.summary()
    runner = TFLiteRunner(by_suffix[".tflite"].path, threads=1)
    from featherface_mobile.processing import letterbox, normalize

    img, _ = letterbox(read_image(sorted((wider / "images").iterdir())[0]), 320)
    loc, conf, landms = runner(normalize(img, load_model(retinaface_weights).config.mean_bgr))
    assert loc.shape[-1] == 4 and conf.shape[-1] == 2 and landms.shape[-1] == 10 and np.isfinite(loc).all()


@pytest.mark.parametrize("args,needle", [
    (["qat", "--int8-float", "tails", "--out", "{out}"],
     "unknown --int8-float group 'tails'; choose from: heads, stride2, stride4, stride8, backbone8"),
    (["qat", "--format", "coreml", "--int8-float", "stride4", "--out", "{out}"],
     "--int8-float not supported for format coreml"),
    (["report", "{weights}", "--json", "{out}"],
     "the INT8 report reads .tflite artefacts; export with --format tflite --int8"),
])
def test_quantize_commands_fail_in_one_line_before_any_work(args, needle, tmp_path, retinaface_weights):
    """Bad input to `featherface quantize` (QAT export options are checked before training starts)."""
    args = [a.format(weights=retinaface_weights, out=tmp_path / "out") for a in args]
    proc = subprocess.run([sys.executable, "-m", "featherface_mobile.cli", "quantize", *args, "--weights",
                           str(retinaface_weights)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_learned_ranges_refuse_another_size_and_need_int8(tmp_path):
    from featherface_mobile.errors import FeatherfaceError
    from featherface_mobile.export import ExportOptions, get_format
    from featherface_mobile.export.formats import check_options
    from featherface_mobile.quant.learned import LearnedRanges
    from featherface_mobile.quant.ptq import int8_source

    path = tmp_path / "r.ranges.npz"
    LearnedRanges(np.zeros((1, 3, 320, 320), np.float32), [(1, 8, 160, 160)], [np.zeros(16)],
                  np.array([[0.0, 1.0]])).save(path)
    with pytest.raises(FeatherfaceError, match="learned at 320x320.*--size 320"):
        int8_source(torch.nn.Conv2d(3, 8, 3), [], path, 640)
    with pytest.raises(FeatherfaceError, match="add --int8"):
        check_options(get_format("tflite"), ExportOptions(int8_ranges=path))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a ranges file")
    with pytest.raises(FeatherfaceError, match="not a QAT ranges file"):
        LearnedRanges.load(bad)


def test_deform_group_is_the_deformable_sampling_of_v1(v1_weights, retinaface_weights, tmp_path):
    """`--int8-float deform`: in the exported graph, the ops of V1's 15 deformable convs that sample (the
    gathers, bilinear weights and their sums), none of its convs or CBAM FCs; none in RetinaFace. In the
    QAT graph the same ops lose their fake quantization and every conv keeps it."""
    pytest.importorskip("torchao")
    import onnx

    from featherface_mobile.export import ExportOptions
    from featherface_mobile.export.onnx_format import export_onnx_float
    from featherface_mobile.quant import qat
    from featherface_mobile.quant.float_ops import get_float_group

    group = get_float_group("deform")
    picked = {}
    for name, weights in (("v1", v1_weights), ("retinaface", retinaface_weights)):
        path = tmp_path / f"{name}.onnx"
        export_onnx_float(load_model(weights), ExportOptions(size=160), path, {"model": name, "version": "test"})
        model = onnx.load(str(path))
        nodes = group.onnx_nodes(model)
        picked[name] = {t: sum(n.op_type == t for n in model.graph.node if n.name in nodes)
                        for t in ("Gather", "ReduceSum", "Conv", "Gemm")}
    assert picked["v1"] == {"Gather": 15, "ReduceSum": 15, "Conv": 0, "Gemm": 0}, picked
    assert sum(picked["retinaface"].values()) == 0, picked

    net = load_model(v1_weights)
    x = _batches(net, 1, 160)[0]
    start = qat.float_start(net, [x])

    def fake_quant(groups):
        graph = qat.prepare_qat(start, x, groups).graph
        convs = [n for n in graph.nodes if n.op == "call_function" and "conv2d" in str(n.target)]
        return sum(n.op == "call_module" for n in graph.nodes), sum(n.args[1].op != "call_module" for n in convs)

    (all_fq, _), (deform_fq, float_convs) = fake_quant(()), fake_quant(("deform",))
    assert float_convs == 0 and deform_fq < all_fq, (all_fq, deform_fq)


def test_adaround_puts_weights_on_the_tflite_grid_and_leaves_float_groups_alone(retinaface_weights):
    """Every rounded conv's weights are integers times its per-channel scale with the largest at +-127 (so
    TFLiteConverter recomputes the same scale and its nearest rounding reproduces the learned one); the
    convs of `stride4` keep their float weights; learned rounding does not raise the convs' error."""
    from featherface_mobile.quant.adaround import AdaRoundSettings, adaround, relative_gain
    from featherface_mobile.quant.equalize import int8_friendly

    net = load_model(retinaface_weights)
    calib = _batches(net, 2, 160)
    prepared = int8_friendly(net, calib)
    rounded, report = adaround(prepared, calib, AdaRoundSettings(iterations=150, rows_per_image=512, batch_rows=256),
                               float_groups=("stride4",))
    before = dict(prepared.named_modules())
    convs = {n: m for n, m in rounded.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert set(report) and set(report) < set(convs)
    for name, conv in convs.items():
        w = conv.weight.detach()
        if name not in report:
            if name.startswith("body.stage1.0"):  # the stem (stride 2) is in stride4
                assert torch.equal(w, before[name].weight)
            continue
        scale = w.abs().flatten(1).amax(1) / 127
        n = w / scale.reshape(-1, *[1] * (w.dim() - 1))
        assert float((n - n.round()).abs().max()) < 1e-3, name
        assert torch.allclose(n.abs().flatten(1).amax(1), torch.full_like(scale, 127.0)), name
    assert "body.stage1.0.0" not in report and "body.stage2.0.0" in report
    assert relative_gain(report) <= 1.0, report


def test_adaround_is_a_tflite_int8_option(tmp_path):
    from featherface_mobile.errors import FeatherfaceError
    from featherface_mobile.export import ExportOptions, get_format
    from featherface_mobile.export.formats import check_options

    with pytest.raises(FeatherfaceError, match="--int8-rounding not supported for format onnx"):
        check_options(get_format("onnx"), ExportOptions(int8=True, int8_rounding="adaround"))
    with pytest.raises(FeatherfaceError, match="add --int8"):
        check_options(get_format("tflite"), ExportOptions(int8_rounding="adaround"))
    check_options(get_format("tflite"), ExportOptions(int8=True, int8_rounding="adaround"))
