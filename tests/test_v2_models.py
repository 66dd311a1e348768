"""FeatherFace V2 / V2-Ultra: parameter counts, output layout, Ultra switches, ONNX parity, backbone init."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from featherface_mobile.checkpoint import detect_architecture
from featherface_mobile.detect import read_image
from featherface_mobile.errors import FeatherfaceError
from featherface_mobile.models import create_model, get_spec
from featherface_mobile.models.backbone_init import SOURCES, init_backbone
from featherface_mobile.models.featherface_v2 import ULTRA_SWITCHES, parameter_breakdown
from featherface_mobile.processing import normalize

SEED_V2_TOTAL = 256_148  # the seed's claim (shared/seeds/001_*), not a measurement
V2_BREAKDOWN = {
    "backbone": 213_072,
    "cbam_plus": 6_135,
    "bifpn_light": 18_420,
    "ssh_grouped": 6_768,
    "channel_shuffle": 0,
    "shared_multihead": 15_552,
    "total": 259_947,
}
# Parameters each Ultra switch adds (docs/v2.md); every other switch changes outputs only.
SWITCH_PARAMS = {"dynamic_weight_sharing": 32}
IMAGE = "0_Parade_Parade_0_102.jpg"


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def ultra(**switches) -> torch.nn.Module:
    """V2-Ultra with exactly the given switches on."""
    flags = {s: switches.get(s, False) for s in ULTRA_SWITCHES}
    return get_spec("featherface-v2-ultra").build(**flags).eval()


def randomise_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics so that random-init outputs are not degenerate."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
    return model


def run(model, x):
    with torch.inference_mode():
        return model(x)


def test_v2_parameter_breakdown_is_exact_and_within_2_percent_of_the_seed():
    model = create_model("featherface-v2")
    assert parameter_breakdown(model) == V2_BREAKDOWN
    assert n_params(model) == 259_947
    assert abs(n_params(model) - SEED_V2_TOTAL) / SEED_V2_TOTAL < 0.02  # +1.48%


def test_v2_ultra_adds_only_the_dynamic_weight_vector():
    model = create_model("featherface-v2-ultra")
    assert n_params(model) == 259_979
    assert parameter_breakdown(model) == {**V2_BREAKDOWN, "dynamic_weight_sharing": 32, "total": 259_979}


@pytest.mark.parametrize("name", ["featherface-v2", "featherface-v2-ultra"])
@pytest.mark.parametrize("size,priors", [(320, 4200), (640, 16800)])
def test_outputs_have_the_v1_anchor_layout(name, size, priors):
    model = create_model(name)
    loc, conf, landms = run(model, torch.randn(1, 3, size, size))
    assert loc.shape == (1, priors, 4) and conf.shape == (1, priors, 2) and landms.shape == (1, priors, 10)
    torch.testing.assert_close(conf.sum(-1), torch.ones(1, priors))


def test_conf_is_logits_in_train_mode():
    model = create_model("featherface-v2").train()
    _, conf, _ = model(torch.randn(2, 3, 320, 320))
    assert not torch.allclose(conf.sum(-1), torch.ones(2, 4200))


def test_ultra_with_every_switch_off_computes_v2():
    torch.manual_seed(0)
    v2 = randomise_bn(create_model("featherface-v2"))
    off = ultra()
    off.load_state_dict(v2.state_dict(), strict=True)
    x = torch.randn(1, 3, 320, 320)
    for a, b in zip(run(v2, x), run(off, x)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("switch", ULTRA_SWITCHES)
def test_each_ultra_switch_toggles_independently(switch):
    torch.manual_seed(0)
    base = randomise_bn(ultra())
    alone = ultra(**{switch: True})
    missing, unexpected = alone.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and set(missing) == ({"dynamic_weights"} if switch in SWITCH_PARAMS else set())
    assert n_params(alone) - n_params(base) == SWITCH_PARAMS.get(switch, 0)

    everything = randomise_bn(ultra(**dict.fromkeys(ULTRA_SWITCHES, True)))
    all_but = ultra(**{s: s != switch for s in ULTRA_SWITCHES})
    all_but.load_state_dict(everything.state_dict(), strict=False)
    assert n_params(everything) - n_params(all_but) == SWITCH_PARAMS.get(switch, 0)

    x = torch.randn(1, 3, 320, 320)
    for on, off in ((alone, base), (everything, all_but)):
        diff = max((a - b).abs().max().item() for a, b in zip(run(on, x), run(off, x)))
        assert diff > 1e-5, f"{switch} does not change the outputs"


def test_saved_v2_and_ultra_checkpoints_are_told_apart():
    for name in ("featherface-v2", "featherface-v2-ultra"):
        assert detect_architecture(create_model(name).state_dict()) == name


@pytest.mark.parametrize("name", ["featherface-v2", "featherface-v2-ultra"])
def test_onnx_export_matches_pytorch_on_a_real_image(name, wider, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = randomise_bn(create_model(name))
    init_backbone(model, "retinaface", shared_dir=wider.parents[1])
    image = normalize(read_image(wider / "images" / IMAGE))
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (torch.from_numpy(image),), str(path), opset_version=17, dynamo=False,
                      input_names=["input"], output_names=["loc", "conf", "landms"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": image})
    ref = run(model, torch.from_numpy(image))
    assert [o.name for o in session.get_outputs()] == ["loc", "conf", "landms"]
    for r, g in zip(ref, got):
        assert g.shape == tuple(r.shape) == (1, 7098, g.shape[-1])
        np.testing.assert_allclose(g, r.numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("source,prefix,file_prefix,ignored", [
    ("retinaface", "body.", "body.", 138),
    ("imagenet", "", "module.", 2),  # read_state_dict drops the leading `module.`
])
def test_init_backbone_loads_every_backbone_tensor(source, prefix, file_prefix, ignored, shared):
    torch.manual_seed(0)
    model = create_model("featherface-v2-ultra")
    rest = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("body.")}
    result = init_backbone(model, source, shared_dir=shared)
    assert result.path == shared / SOURCES[source] and result.prefix == prefix
    assert result.loaded == len(model.body.state_dict()) == 162 and result.ignored == ignored
    state = torch.load(result.path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    for key, value in model.body.state_dict().items():
        assert torch.equal(value, state[file_prefix + key]), key
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in rest.items())


def test_init_backbone_rejects_files_without_a_fitting_backbone(tmp_path, shared):
    model = create_model("featherface-v2")
    heads_only = {k: v for k, v in model.state_dict().items() if not k.startswith("body.")}
    torch.save(heads_only, tmp_path / "heads.pth")
    with pytest.raises(FeatherfaceError, match="holds no MobileNet-0.25 backbone"):
        init_backbone(model, tmp_path / "heads.pth")

    bad = dict(model.state_dict())
    bad["body.stage3.1.3.weight"] = torch.zeros(128, 256, 1, 1)
    del bad["body.stage2.0.0.weight"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(FeatherfaceError, match=r"1 missing backbone keys .*1 backbone shape mismatches"):
        init_backbone(model, tmp_path / "bad.pth")

    with pytest.raises(FeatherfaceError, match="not found"):
        init_backbone(model, tmp_path / "absent.pth")
    with pytest.raises(FeatherfaceError, match="no `body` backbone"):
        init_backbone(torch.nn.Linear(2, 2), "retinaface", shared_dir=shared)
