"""Presets: saved from a workdir in float16, listed, resolved by name by every loader, checked by SHA-256."""

import json
import subprocess
import sys

import numpy as np
import pytest

from keras_s2v import backends, pretrained, workdirs
from keras_s2v.configs.experiments import get_experiment
from keras_s2v.models.speech2vid import Speech2Vid


@pytest.fixture
def preset_root(tmp_path, monkeypatch):
    """A trained-looking tiny s2v_real workdir saved as preset ``tiny_face`` in a presets folder of the test's own."""
    workdir = tmp_path / "run"
    config = get_experiment("s2v_real_tiny")
    config.model.init_from = str(tmp_path / "an_earlier_run")  # continued from a run on the training machine
    workdirs.check_workdir(workdir, config)
    m, s = config.model, config.model.speech2vid
    Speech2Vid(1, m.width, m.embedding_dim, True, False, s.upsampling, s.high_res_skips).save(workdir / "model.keras")
    (workdir / "data.json").write_text(json.dumps({"data_dir": "/nowhere", "data_parameters": {"crop_size": 112}}))
    root = tmp_path / "presets"
    pretrained.save_preset(workdir, root / "tiny_face", "tiny_face", "a tiny test face", "# tiny_face\n")
    monkeypatch.setenv(pretrained.PRESETS_ENV, str(root))
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    return root, workdir


def test_a_preset_is_listed_and_loads_by_name_like_its_workdir(preset_root):
    root, workdir = preset_root
    info = json.loads((root / "tiny_face" / "preset.json").read_text())
    assert info["family"] == "speech2vid" and info["weights_dtype"] == "float16" and len(info["sha256"]) == 64
    saved = json.loads((root / "tiny_face" / "config.json").read_text())
    assert saved["model"]["init_from"] is None and saved["name"] == "s2v_real_tiny"  # no path of the training machine
    listed = subprocess.run([sys.executable, "-m", "keras_s2v.pretrained"], capture_output=True, text=True, check=True)
    assert "tiny_face\tspeech2vid\ta tiny test face" in listed.stdout.splitlines()
    by_name, by_path = backends.load_generator("tiny_face"), backends.load_generator(workdir)
    faces = np.random.default_rng(0).integers(0, 255, (1, 112, 112, 3), np.uint8)
    pcm = np.random.default_rng(1).normal(0, 0.1, (2, by_path.window_samples)).astype(np.float32)
    a = by_name.generate_frame_pcm(by_name.identity_features(faces), pcm)
    b = by_path.generate_frame_pcm(by_path.identity_features(faces), pcm)
    np.testing.assert_allclose(a, b, atol=2e-3)  # float16 weights
    assert pretrained.resolve("tiny_face") == pretrained.resolve("tiny_face")  # built once
    assert pretrained.resolve(str(workdir)) == str(workdir) and pretrained.resolve("no_such_preset") == "no_such_preset"


def test_weights_that_do_not_match_their_checksum_are_refused(preset_root):
    root, _ = preset_root
    weights = root / "tiny_face" / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(pretrained.PresetError, match="does not match its SHA-256"):
        pretrained.resolve("tiny_face")


def test_every_shipped_preset_matches_its_checksum_and_builds(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    shipped = [p for p in pretrained.list_presets() if Path(p["path"]).parent == Path(pretrained.__file__).parent]
    assert {p["name"] for p in shipped} >= {"syncnet_real"}
    for preset in shipped:
        assert preset["family"] in pretrained.FAMILIES and "SHA-256" in (Path(preset["path"]) / "card.md").read_text()
        folder = pretrained.resolve(preset["name"])
        assert (folder / "model.keras").exists() and (folder / "config.json").exists()
