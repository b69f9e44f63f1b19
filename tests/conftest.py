"""Shared fixtures: the real-media folder (optional) and small synthetic inputs."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def media_dir() -> Path:
    return Path(os.environ.get("KERAS_S2V_MEDIA", ROOT.parent / "shared" / "media"))


@pytest.fixture(scope="session")
def media():
    """``../shared/media`` (or $KERAS_S2V_MEDIA); tests that need it skip without it."""
    path = media_dir()
    if not (path / "MANIFEST.tsv").exists():
        pytest.skip(f"real media not found at {path} (set KERAS_S2V_MEDIA)")
    return path


@pytest.fixture(scope="session")
def synth_shards(tmp_path_factory):
    """Shards the project makes itself: 2 synthetic speakers x 1 clip x 3 s, last quarter held out."""
    from keras_s2v.data import prepare, synth

    root = tmp_path_factory.mktemp("synth")
    synth.make_corpus(root / "corpus", num_clips=1, seconds=3.0, size=192, seed=0, log=None)
    config = prepare.PrepareConfig(split="train", holdout_tail=0.25, min_track_frames=20)
    manifest = prepare.prepare([str(root / "corpus")], root / "shards", config, progress=False, log=lambda _: None)
    assert manifest["clips_ok"] == 2, manifest
    return root / "shards"
