"""Where the shared reference material (checkpoints, WIDER images) lives."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import FeatherfaceError

_REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"


def shared_dir() -> Path | None:
    """$FEATHERFACE_SHARED, else ../shared beside the working directory or beside the checkout."""
    env = os.environ.get("FEATHERFACE_SHARED")
    candidates = [Path(env)] if env else [Path.cwd().parent / "shared", _REPO_ROOT.parent / "shared"]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None


def wider_val_dir() -> Path | None:
    s = shared_dir()
    d = s / "data" / "wider_val_416" if s else None
    return d if d and d.is_dir() else None


def require_wider_val() -> Path:
    """wider_val_dir(), or a one-line error saying how to point at the shared folder."""
    d = wider_val_dir()
    if d is None:
        raise FeatherfaceError("the shared WIDER images (data/wider_val_416) are absent: "
                               "set FEATHERFACE_SHARED to the shared folder")
    return d


def resolve_weights_ref(ref: str) -> Path | None:
    """'shared:<rel>' or 'package:<file>' -> a path that exists, or None."""
    kind, _, rel = ref.partition(":")
    if kind == "package":
        p = PACKAGE_WEIGHTS / rel
        return p if p.is_file() else None
    s = shared_dir()
    p = s / rel if s else None
    return p if p and p.is_file() else None
