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
