"""The fixed split of wider_val_416: a part for training/calibration and a held-out evaluation part.

The split is deterministic (every third image by sorted name is held out for evaluation) and is
recorded in splits.json beside this module so it never silently changes.
"""
from __future__ import annotations

import json
from pathlib import Path

_SPLITS_FILE = Path(__file__).with_name("splits.json")


def make_splits(names: list[str]) -> dict[str, list[str]]:
    names = sorted(names)
    return {"eval": names[::3], "train": [n for i, n in enumerate(names) if i % 3]}


def split_images(split: str, data_dir: str | Path) -> list[str] | None:
    """Image names of `split` ("all" -> None = every image)."""
    if split == "all":
        return None
    splits = json.loads(_SPLITS_FILE.read_text())
    return splits[split]
