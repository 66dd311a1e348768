"""Model zoo: strict loading of the real checkpoints, parameter counts, reference-output parity."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from featherface_mobile.checkpoint import load_model, read_state_dict
from featherface_mobile.detect import read_image
from featherface_mobile.models import create_model, list_models
from featherface_mobile.models.deform import modulated_deform_conv2d
from featherface_mobile.processing import normalize

REFERENCE = {"retinaface-mnet025": "retinaface_mnet025", "featherface-v1": "featherface_v1_592k"}


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,count", [("retinaface-mnet025", 426_608), ("featherface-v1", 592_371)])
def test_trained_checkpoint_loads_strictly_with_exact_parameter_count(name, count, retinaface_weights, v1_weights):
    weights = retinaface_weights if name == "retinaface-mnet025" else v1_weights
    model = load_model(weights)  # architecture detected from the keys
    assert model.model_name == name
    assert n_params(model) == count
    sd = read_state_dict(weights)
    assert set(sd) == set(model.state_dict())
    assert not any(k.endswith(("total_ops", "total_params")) for k in sd)


def test_paper_config_is_within_one_percent_of_488_7k():
    assert abs(n_params(create_model("featherface-v1-paper")) - 488_700) / 488_700 < 0.01


@pytest.mark.parametrize("name", list(REFERENCE))
def test_outputs_match_reference_implementation(name, shared, retinaface_weights, v1_weights):
    model = load_model(retinaface_weights if name == "retinaface-mnet025" else v1_weights)
    ref = np.load(shared / "data" / "reference_outputs" / f"{REFERENCE[name]}.npz")
    stems = sorted({k.split("/")[0] for k in ref.files})
    assert len(stems) == 3
    for stem in stems:
        x = normalize(read_image(shared / "data" / "wider_val_416" / "images" / f"{stem}.jpg"))
        with torch.inference_mode():
            outs = model(torch.from_numpy(x))
        for out, key in zip(outs, ("loc", "conf", "landms")):
            np.testing.assert_allclose(out[0].numpy(), ref[f"{stem}/{key}"], atol=1e-4, rtol=0)


def test_portable_deformable_conv_equals_grid_sample_form_on_real_features(v1_weights, wider):
    """Every deformable conv of the trained V1, fed its real input features: gather form == grid_sample form."""
    model = load_model(v1_weights)
    inputs = {}

    def capture(name):
        def hook(module, args):
            inputs[name] = (module, args[0])
        return hook

    hooks = [m.register_forward_pre_hook(capture(name))
             for name, m in model.named_modules() if type(m).__name__ == "ModulatedDeformConv2d"]
    x = normalize(read_image(wider / "images" / "1_Handshaking_Handshaking_1_457.jpg"))
    with torch.inference_mode():
        model(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    assert len(inputs) == 15
    # Both float32 forms against the op computed in float64: grid_sample's own coordinate rounding
    # (normalised to [-1, 1] and back) costs it ~1e-5 at these magnitudes, so the portable form
    # must be within 1e-5 of the exact op (and so within 2e-5 of the training-time form).
    for name, (conv, feat) in inputs.items():
        weight = conv.regular_conv.weight
        with torch.inference_mode():
            offset = conv.offset_conv(feat)
            mask = 2 * torch.sigmoid(conv.modulator_conv(feat))
            a = modulated_deform_conv2d(feat, offset, mask, weight, portable=False)
            g = modulated_deform_conv2d(feat, offset, mask, weight, portable=True)
            exact = modulated_deform_conv2d(feat.double(), offset.double(), mask.double(), weight.double(), portable=False)
        err_portable, err_grid = (g.double() - exact).abs().max(), (a.double() - exact).abs().max()
        assert err_portable <= 1e-5, (name, float(err_portable), float(err_grid))
        torch.testing.assert_close(a, g, atol=2e-5, rtol=0, msg=name)


def test_portable_deformable_conv_handles_offsets_outside_the_image():
    torch.manual_seed(0)
    x = torch.rand(2, 8, 13, 11)
    offset = torch.randn(2, 18, 13, 11) * 4
    mask = torch.rand(2, 9, 13, 11) * 2
    w, b = torch.randn(5, 8, 3, 3) * 0.1, torch.randn(5)
    a = modulated_deform_conv2d(x, offset, mask, w, b, portable=False)
    g = modulated_deform_conv2d(x, offset, mask, w, b, portable=True)
    assert a.shape == (2, 5, 13, 11)
    torch.testing.assert_close(a, g, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("size", [320, 640])
def test_every_model_outputs_three_tensors_with_the_prior_count(name, size):
    model = create_model(name)
    with torch.inference_mode():
        loc, conf, landms = model(torch.zeros(1, 3, size, size))
    n = sum((size // s) ** 2 * 2 for s in (8, 16, 32))
    assert loc.shape == (1, n, 4) and conf.shape == (1, n, 2) and landms.shape == (1, n, 10)
    torch.testing.assert_close(conf.sum(-1), torch.ones(1, n))
