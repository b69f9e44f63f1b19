"""A preset on its fastest form: --backend auto builds the int8 TFLite model once into the preset cache, with
the export's parity check, runs it when it passes and falls back to Keras (saying why) when it does not."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from export import parity, presets
from keras_s2v import backends, frame_loop, pretrained
from keras_s2v.data import media


@pytest.fixture(scope="module")
def preset_env(trained_tiny, tmp_path_factory):
    """A tiny trained masked Speech2Vid saved as preset ``tiny_talker``; its own presets folder and cache."""
    root = tmp_path_factory.mktemp("presets")
    workdir = trained_tiny("s2v_tiny", "model.speech2vid.masked_target=true")  # shared with test_export_masked.py
    pretrained.save_preset(workdir, root / "presets" / "tiny_talker", "tiny_talker", "a tiny test talker", "# t\n")
    return {pretrained.PRESETS_ENV: str(root / "presets"), pretrained.CACHE_ENV: str(root / "cache")}, workdir


@pytest.fixture
def env(preset_env, monkeypatch):
    variables, _ = preset_env
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    return variables


def test_a_path_runs_as_the_form_it_is_and_takes_no_backend(preset_env, env):
    _, workdir = preset_env
    assert presets.choose_model(str(workdir)) == (str(workdir), None)
    assert presets.choose_model("syncnet_real")[1] is None  # a preset that is no generator: left to the command
    with pytest.raises(ValueError, match=r"--backend tflite_int8: only for a preset --model .* runs as the form"):
        presets.choose_model(str(workdir), "tflite_int8")
    with pytest.raises(ValueError, match="choose from auto, keras"):
        presets.choose_model("tiny_talker", "onnx")
    model, note = presets.choose_model("tiny_talker", "keras")
    assert model == "tiny_talker" and note.startswith("backend: keras (preset tiny_talker")


def test_auto_builds_the_int8_model_once_into_the_cache_and_it_matches_keras(
    preset_env, env, synth_shards, monkeypatch
):
    lines = []
    model, note = presets.choose_model("tiny_talker", data_dir=synth_shards, log=lines.append)
    preset = pretrained.find("tiny_talker")
    assert model.endswith("tiny_talker_int8.tflite") and model == str(pretrained.built_form(preset, "tflite_int8"))
    assert model.startswith(env[pretrained.CACHE_ENV]) and not model.startswith(f"{pretrained.materialize(preset)}/")
    assert note.startswith("backend: tflite_int8 (preset tiny_talker") and "built now" in note, note
    assert "frame PSNR >= " in note and lines == [
        "preset tiny_talker: converting to tflite_int8 and checking it against Keras"
    ]
    report = json.loads((pretrained.form_dir(preset, "tflite_int8") / "parity.json").read_text())
    assert report["rows"] and all(r["ok"] for r in report["rows"]) and report["data"] == str(synth_shards)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("built twice")

    monkeypatch.setattr(presets, "build_form", no_rebuild)
    again, note = presets.choose_model("tiny_talker")  # no calibration data needed: found in the cache
    assert again == model and "built now" not in note

    # The runtime takes the path like any .tflite: frames close to the preset's Keras model.
    lite, keras = backends.load_generator(model), backends.load_generator("tiny_talker")
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, (1, 112, 112, 3), np.uint8)
    pcm = rng.normal(0, 0.1, (3, lite.window_samples)).astype(np.float32)
    inputs = frame_loop.identity_faces(keras, faces)  # a photo: its own target
    a = lite.generate_frame_pcm(lite.identity_features(inputs), pcm)
    b = keras.generate_frame_pcm(keras.identity_features(inputs), pcm)
    assert parity.psnr_db(b, a) >= 25.0


def test_a_form_another_run_built_meanwhile_is_used(preset_env, env, synth_shards, monkeypatch):
    preset, found = pretrained.find("tiny_talker"), pretrained.built_form
    presets.choose_model("tiny_talker", data_dir=synth_shards, log=lambda _: None)  # built (or found) here
    calls = []

    def not_yet_then_found(p, form):  # not built when this run looked, built when its export was refused
        calls.append(form)
        return None if len(calls) == 1 else found(p, form)

    monkeypatch.setattr(pretrained, "built_form", not_yet_then_found)
    assert presets.build_form(preset, "tflite_int8", data_dir=synth_shards, log=lambda _: None) == found(
        preset, "tflite_int8"
    )


def test_a_form_that_fails_its_parity_check_is_recorded_and_auto_runs_keras(preset_env, env, synth_shards, monkeypatch):
    monkeypatch.setitem(parity.MAX_ABS, "float16", -1.0)  # a tolerance nothing meets
    with pytest.raises(parity.ParityError, match="tflite_float16"):
        presets.choose_model("tiny_talker", "tflite_float16", data_dir=synth_shards, log=lambda _: None)
    preset = pretrained.find("tiny_talker")
    assert pretrained.built_form(preset, "tflite_float16") is None
    assert not pretrained.form_dir(preset, "tflite_float16").exists()  # nothing half-written
    assert "max_abs_error" in pretrained.form_failure(preset, "tflite_float16")
    with pytest.raises(ValueError, match="failed its parity check against Keras"):  # not tried again
        presets.choose_model("tiny_talker", "tflite_float16")
    monkeypatch.setattr(pretrained, "form_failure", lambda p, form: "recorded" if form == "tflite_int8" else None)
    assert presets.choose_model("tiny_talker") == (
        "tiny_talker",
        "backend: keras (preset tiny_talker's tflite_int8 model failed its parity check against Keras: recorded)",
    )


def test_generate_runs_a_preset_on_its_int8_model_and_says_so(preset_env, env, synth_shards, tmp_path):
    presets.choose_model("tiny_talker", data_dir=synth_shards, log=lambda _: None)  # built (or found) here
    photo, speech = tmp_path / "face.png", tmp_path / "speech.wav"
    import cv2

    from keras_s2v.data import synth

    cv2.imwrite(str(photo), synth.load_portrait("astronaut").image[..., ::-1])
    media.write_wav(speech, np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32))
    command = [sys.executable, "-m", "keras_s2v.generate", "--face", str(photo), "--audio", str(speech)]
    run = subprocess.run(
        [*command, "--model", "tiny_talker", "--out", str(tmp_path / "out.mp4"), "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert run.returncode == 0, run.stderr
    assert "model: TFLite " in run.stdout and "backend: tflite_int8 (preset tiny_talker" in run.stdout, run.stdout
    assert media.probe(tmp_path / "out.mp4").has_video and run.stdout.startswith(f"wrote {tmp_path / 'out.mp4'}")
    bad = subprocess.run(
        [*command, "--model", str(preset_env[1]), "--backend", "tflite_int8", "--out", str(tmp_path / "bad.mp4")],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert bad.returncode == 2 and bad.stderr.splitlines()[-1].startswith("error: --backend tflite_int8: only for a"), (
        bad.stderr
    )
    assert not (tmp_path / "bad.mp4").exists()
