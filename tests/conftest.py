"""Shared test fixtures: the real data beside the checkout (``../shared/data``) and a tiny
CamVid copy in the SegNet layout for fast training tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FPLNET_SHARED_DATA", REPO.parent / "shared" / "data"))
CAMVID = SHARED_DATA / "camvid"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Class-weight caches go to a per-session folder, never to the user's ~/.cache.
    monkeypatch.setenv("FPLNET_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_camvid(tmp_path_factory) -> Path:
    """8 train and 4 val CamVid frames (symlinks to the real files) in the SegNet layout."""
    if not CAMVID.exists():
        pytest.skip(f"real CamVid data not found at {CAMVID}")
    root = tmp_path_factory.mktemp("tiny_camvid")
    for split, count in (("train", 8), ("val", 4)):
        (root / split).mkdir()
        (root / f"{split}annot").mkdir()
        for image in sorted((CAMVID / split).glob("*.png"))[:count]:
            (root / split / image.name).symlink_to(image)
            (root / f"{split}annot" / image.name).symlink_to(CAMVID / f"{split}annot" / image.name)
    return root
