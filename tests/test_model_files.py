"""Corrupt, cut or foreign model files: one error naming the file and what is wrong, from every loader."""

import json
import subprocess
import sys
import zipfile

import cv2
import keras
import numpy as np
import pytest

from keras_s2v import backends, model_files, workdirs
from keras_s2v.configs.experiments import get_experiment
from keras_s2v.data import audio, media
from keras_s2v.evaluation.sync import SyncExpert


def _cut(path, size=None):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if size is None else size])


def _doubled(x):
    return x * 2


def _keras_file(path, lambda_function=None):
    """A small .keras archive; ``lambda_function``: with a Lambda layer naming that function (unknown here)."""
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(_doubled)(inputs) if lambda_function else keras.layers.Dense(2)(inputs)
    keras.Model(inputs, outputs).save(path)
    if lambda_function:  # rewritten in the archive: no function of that name exists to be found
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        config = json.loads(members["config.json"])
        config["config"]["layers"][1]["config"]["function"]["config"] = lambda_function
        members["config.json"] = json.dumps(config).encode()
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    return path


def _workdir(path, experiment="s2v_tiny"):
    workdirs.check_workdir(path, get_experiment(experiment))
    return path


def _python_lambda_model(path):
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 3)(inputs)).save(path)


@pytest.mark.parametrize(
    "damage, problem",
    [
        ("cut", r"not a whole \.keras archive \(\d+ bytes: cut short"),
        ("unknown_function", "cannot be loaded: Could not locate function 'no_such_function'"),
        ("python_lambda", "cannot be loaded: .* is a Python lambda .refused in safe mode"),  # still refused
        ("foreign", "holds a Functional model, not the Speech2Vid expected here"),
    ],
)
def test_model_keras_that_does_not_load_is_named(damage, problem, tmp_path):
    workdir = _workdir(tmp_path / "run")
    model = workdir / "model.keras"
    if damage == "python_lambda":
        _python_lambda_model(model)
    else:
        _keras_file(model, "no_such_function" if damage == "unknown_function" else None)
    if damage == "cut":
        _cut(model)
    with pytest.raises(backends.ModelError, match=f"^{model}: {problem}"):
        backends.load_generator(workdir)


@pytest.mark.parametrize("experiment", ["deblur_tiny", "syncnet_tiny"])
def test_every_workdir_loader_names_a_cut_model(experiment, tmp_path):
    workdir = _workdir(tmp_path / "run", experiment)
    _cut(_keras_file(workdir / "model.keras"))
    load = backends.load_deblur if experiment == "deblur_tiny" else SyncExpert
    with pytest.raises(model_files.ModelError, match=f"^{workdir / 'model.keras'}: not a whole .keras archive"):
        load(workdir)


@pytest.fixture
def saved_model(tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.scale = tf.Variable(np.ones(4096, np.float32))
    module.call = tf.function(lambda x: {"y": x * module.scale}, input_signature=[tf.TensorSpec([4096], tf.float32)])
    path = tmp_path / "export" / "serving" / "tiny" / "1"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.call})
    return path


@pytest.mark.parametrize("damage", ["cut_graph", "no_variables", "cut_variables"])
def test_saved_model_that_does_not_load_is_named(damage, saved_model):
    if damage == "cut_graph":
        _cut(saved_model / "saved_model.pb")
        expected = f"^{saved_model / 'saved_model.pb'}: does not parse as a SavedModel"
    elif damage == "no_variables":
        import shutil

        shutil.rmtree(saved_model / "variables")
        expected = f"^{saved_model}: SavedModel without its variables/"
    else:
        _cut(next((saved_model / "variables").glob("variables.data-*")))
        expected = f"^{saved_model}: cannot be loaded as a SavedModel: "
    with pytest.raises(backends.ModelError, match=expected) as error:
        backends.load_generator(saved_model.parents[2])  # the export folder, as --model takes it
    assert "experimental_io_device" not in str(error.value)


@pytest.mark.parametrize(
    "content", [b"", b"\x1c\x00\x00\x00TFL3" + bytes(100), np.arange(5000, dtype=np.uint8).tobytes()]
)
def test_tflite_that_does_not_load_is_named(content, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    with pytest.raises(backends.ModelError, match=f"^{path}: not a TFLite model, or cut short"):
        backends.load_generator(path)


def test_generate_reports_a_cut_model_in_one_line(tmp_path):
    workdir = _workdir(tmp_path / "run")
    _cut(_keras_file(workdir / "model.keras"))
    cv2.imwrite(str(tmp_path / "face.png"), np.full((64, 64, 3), 128, np.uint8))
    media.write_wav(tmp_path / "speech.wav", np.zeros(audio.SAMPLE_RATE // 2, np.float32))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_s2v.generate",
            "--model",
            str(workdir),
            "--face",
            str(tmp_path / "face.png"),
            "--audio",
            str(tmp_path / "speech.wav"),
            "--out",
            str(tmp_path / "out.mp4"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {workdir / 'model.keras'}: not a whole .keras archive")
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "out.mp4").exists()
