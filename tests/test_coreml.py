"""Core ML export: FP16/INT8/image-input artefacts verified against PyTorch by evaluating their MIL ops."""
from __future__ import annotations

import numpy as np
import pytest

from featherface_mobile.checkpoint import load_model
from featherface_mobile.export import ExportOptions, export, verify
from featherface_mobile.export.common import artefact_metadata, model_inputs, sample_images, torch_outputs

pytest.importorskip("coremltools", reason="coremltools not installed (pip install featherface-mobile[coreml])")

from featherface_mobile.export.coreml_format import export_coreml  # noqa: E402
from featherface_mobile.export.mil_eval import OPS, MilProgram  # noqa: E402
from featherface_mobile.runtime import load_runner  # noqa: E402

SIZE = 320
quiet = dict(verify_images=2, log=lambda *_: None)


@pytest.fixture(scope="module")
def retinaface_fp16(tmp_path_factory, retinaface_weights):
    res = export(retinaface_weights, formats=["coreml"], options=ExportOptions(size=SIZE),
                 out=tmp_path_factory.mktemp("cm"), **quiet)
    assert res.ok, [a.verify.summary() for a in res.failed]
    return res.artefacts[0]


@pytest.fixture(scope="module")
def retinaface_model(retinaface_weights):
    return load_model(retinaface_weights, None)


def test_fp16_export_of_both_checkpoints_passes_verify(retinaface_fp16, v1_weights, tmp_path):
    v1 = export(v1_weights, formats=["coreml"], options=ExportOptions(size=SIZE), out=tmp_path, **quiet)
    assert v1.ok, [a.verify.summary() for a in v1.failed]
    for art in (retinaface_fp16, v1.artefacts[0]):
        assert art.path.suffix == ".mlpackage" and art.path.is_dir()
        assert art.precision == "fp16" and art.verify.passed and art.verify.f1 >= 0.99


def test_metadata_round_trips_through_the_package(retinaface_fp16, retinaface_weights):
    runner = load_runner(retinaface_fp16.path)
    meta = runner.metadata
    assert meta["model"] == "retinaface-mnet025" and meta["format"] == "coreml" and meta["precision"] == "fp16"
    assert meta["input_size"] == [SIZE, SIZE] and meta["outputs"] == ["loc", "conf", "landms"]
    assert meta["weights_sha256"] is not None and runner.input_size == SIZE
    import coremltools as ct

    spec = ct.models.MLModel(str(retinaface_fp16.path), skip_model_load=True).get_spec()
    assert spec.description.metadata.userDefined["model"] == "retinaface-mnet025"
    assert [o.name for o in spec.description.output] == ["loc", "conf", "landms"]
    # Float32 at the I/O even though the program computes in FP16.
    f32 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    assert all(f.type.multiArrayType.dataType == f32 for f in (*spec.description.input, *spec.description.output))


def test_int8_weights_are_smaller_and_pass(retinaface_fp16, retinaface_weights, tmp_path):
    res = export(retinaface_weights, formats=["coreml"], options=ExportOptions(size=SIZE, int8=True), out=tmp_path, **quiet)
    assert res.ok, [a.verify.summary() for a in res.failed]
    art = res.artefacts[0]
    assert art.precision == "int8" and art.bytes < 0.75 * retinaface_fp16.bytes
    assert "constexpr_affine_dequantize" in MilProgram.load(art.path).op_types()


# The smallest size where V1's stride-8 sampling-grid vectors (48x48 = 2304 elements) exceed
# coremltools' 2048-element quantization threshold: at 320 (1600) a global INT8 config leaves them
# alone and would pass without the weights-only config.
V1_INT8_SIZE = 384


@pytest.fixture(scope="module")
def v1_int8(v1_weights, tmp_path_factory):
    res = export(v1_weights, formats=["coreml"], options=ExportOptions(size=V1_INT8_SIZE, int8=True),
                 out=tmp_path_factory.mktemp("cm_v1_int8"), keep_failed=True, **quiet)
    return (res.artefacts + res.failed)[0]  # kept when it fails, so the test shows the gate's figures


def test_v1_int8_quantizes_only_conv_and_linear_weights_and_passes(v1_int8):
    assert v1_int8.verify.passed and v1_int8.verify.f1 >= 0.97, v1_int8.verify.summary()
    prog = MilProgram.load(v1_int8.path)
    consumers = {c.op_type for o in prog.main.operations if o.op_type.startswith("constexpr_")
                 for c in o.outputs[0].child_ops}
    assert consumers == {"conv", "linear"}  # never the deformable convs' integer sampling grid


def test_mil_evaluator_dequantizes_int8_weights_as_coremltools_does(v1_int8):
    prog = MilProgram.load(v1_int8.path)
    env: dict = {}
    checked = 0
    for o in prog.main.operations:
        if o.op_type == "constexpr_affine_dequantize":
            prog._run(o, env)
            expected = np.asarray(o.materialized_val_inference(), np.float32)  # coremltools' own decompress, fp16
            got = env[o.outputs[0].name]
            assert got.dtype == np.float32 and got.shape == expected.shape
            np.testing.assert_array_equal(got, expected, err_msg=o.name)
            checked += 1
    assert checked > 40


def test_mil_evaluator_matches_pytorch_within_1e3_on_an_fp32_program(retinaface_model, tmp_path):
    path = tmp_path / "retinaface_fp32.mlpackage"
    meta = artefact_metadata(retinaface_model, SIZE, "fp32", "coreml", "NCHW", None)
    export_coreml(retinaface_model, ExportOptions(size=SIZE), path, meta)
    prog = MilProgram.load(path)
    assert set(prog.op_types()) <= set(OPS)
    batch = model_inputs(sample_images(1, split="eval"), SIZE, retinaface_model.config.mean_bgr)[0]
    got = prog({"input": batch})
    for name, ref in zip(("loc", "conf", "landms"), torch_outputs(retinaface_model, batch)):
        assert got[name].dtype == np.float32 and got[name].shape == ref.shape
        assert np.abs(got[name] - ref).max() < 1e-3, name
    report = verify(path, reference_model=retinaface_model, images=2)
    assert report.precision == "fp32" and report.passed, report.summary()


def test_fp16_emulation_rounds_activations(retinaface_fp16, retinaface_model):
    batch = model_inputs(sample_images(1, split="eval"), SIZE, retinaface_model.config.mean_bgr)[0]
    ref = torch_outputs(retinaface_model, batch)[0]
    emulated = load_runner(retinaface_fp16.path)(batch)[0]
    plain = load_runner(retinaface_fp16.path, emulate_fp16=False)(batch)[0]
    assert not np.array_equal(emulated, plain)
    assert np.abs(emulated - ref).mean() < 0.02 and np.abs(plain - ref).mean() < 0.02


def test_image_input_variant_finds_the_same_faces(retinaface_fp16, retinaface_weights, retinaface_model, tmp_path):
    res = export(retinaface_weights, formats=["coreml"], options=ExportOptions(size=SIZE, image_input=True),
                 out=tmp_path, **quiet)
    assert res.ok, [a.verify.summary() for a in res.failed]
    image_runner, tensor_runner = load_runner(res.artefacts[0].path), load_runner(retinaface_fp16.path)
    assert image_runner.image_input and not tensor_runner.image_input
    assert image_runner.metadata["input_type"] == "image"
    for batch in model_inputs(sample_images(2, split="eval"), SIZE, retinaface_model.config.mean_bgr):
        for a, b in zip(image_runner(batch), tensor_runner(batch)):
            np.testing.assert_allclose(a, b, atol=1e-2)
