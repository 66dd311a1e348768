"""Shared fixtures: the shared reference folder (skip with a reason where it is absent)."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from featherface_mobile.paths import shared_dir

warnings.filterwarnings("ignore", category=UserWarning)
torch.set_num_threads(2)

SHARED = shared_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="shared folder absent (set FEATHERFACE_SHARED or put ../shared beside the checkout)")


@pytest.fixture(scope="session")
def shared() -> Path:
    if SHARED is None:
        pytest.skip("shared folder absent (set FEATHERFACE_SHARED or put ../shared beside the checkout)")
    return SHARED


@pytest.fixture(scope="session")
def retinaface_weights(shared) -> Path:
    return shared / "weights" / "retinaface_mnet025" / "mobilenet0.25_Final.pth"


@pytest.fixture(scope="session")
def v1_weights(shared) -> Path:
    return shared / "weights" / "featherface" / "featherface_v1_592k.pth"


@pytest.fixture(scope="session")
def wider(shared) -> Path:
    return shared / "data" / "wider_val_416"


@pytest.fixture(scope="session")
def random_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A seeded random-init checkpoint for every registered model (those without trained weights)."""
    from featherface_mobile.models import create_model, list_models

    out = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for name in list_models():
        torch.manual_seed(0)
        model = create_model(name)
        # Non-trivial BN statistics so outputs are not degenerate.
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
                m.running_mean.uniform_(-0.1, 0.1)
        p = out / f"{name}.pth"
        torch.save(model.state_dict(), p)
        paths[name] = p
    return paths
