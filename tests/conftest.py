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
    """A seeded untrained stand-in checkpoint for every registered model (those without trained weights)."""
    from featherface_mobile.models import list_models
    from featherface_mobile.models.standin import untrained_standin

    out = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for name in list_models():
        p = out / f"{name}.pth"
        torch.save(untrained_standin(name).state_dict(), p)
        paths[name] = p
    return paths
