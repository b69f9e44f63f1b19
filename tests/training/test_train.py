"""Training: every experiment's tiny variant, overfitting, kill-and-resume, workdir safety, deblur."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_s2v import workdirs
from keras_s2v.configs.experiments import LEGACY_MODEL_FIELDS, apply_overrides, get_experiment
from keras_s2v.data import pipeline
from keras_s2v.training import train_lib

SHORT = ["train.epochs=1", "train.steps_per_epoch=2", "train.validation_steps=1"]


def _check_trained(workdir, name, epochs=1):
    """What a short run of experiment ``name`` (``epochs`` epochs) leaves in its workdir."""
    assert json.loads((workdir / "config.json").read_text())["name"] == name
    history = json.loads((workdir / "history.json").read_text())
    assert len(history) == epochs and all(np.isfinite(r["loss"]) and "val_psnr" in r for r in history)
    model = workdirs.load_trained_model(workdir)
    assert model.output.shape[-3:] == (112, 112, 3)
    assert (workdir / "samples" / "latest.png").exists() and list((workdir / "logs").rglob("events.out.*"))


def test_an_experiment_trains_through_the_cli(synth_shards, tmp_path):
    workdir = tmp_path / "s2v_tiny"
    args = [
        sys.executable,
        "-m",
        "keras_s2v.train",
        "--data",
        str(synth_shards),
        "--workdir",
        str(workdir),
        "--experiment",
        "s2v_tiny",
    ] + [f"--override={o}" for o in SHORT]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    _check_trained(workdir, "s2v_tiny")


# Through train_lib.train, what the CLI above calls with the experiment its flags name: the CLI's own part
# (flags, overrides, exit status) does not depend on the experiment, and each saves a TensorFlow start-up.
# tgan_tiny and tgan_mfcc_spp_tiny train in tests/export/test_export_tgan.py, glance_tiny in test_export_glance.py,
# deblur_tiny in `stopped_run` below (test_the_stopped_run_left_a_trained_workdir).
@pytest.mark.parametrize("name", ["s2v_5img_tiny", "s2v_noskip_tiny"])
def test_every_experiment_trains(name, synth_shards, tmp_path):
    train_lib.train(apply_overrides(get_experiment(name), SHORT), synth_shards, tmp_path / name)
    _check_trained(tmp_path / name, name)


def test_tiny_model_overfits_one_batch(synth_shards):
    keras.utils.set_random_seed(0)
    config = get_experiment("s2v_tiny")
    inputs, target = next(iter(pipeline.speech2vid_dataset(synth_shards, "train", 4, shuffle_buffer=8)))
    model = train_lib.build_model(config)
    train_lib.compile_model(model, config)
    losses = [float(model.train_on_batch(inputs, target)[0]) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0], losses


class _Crash(Exception):
    pass


class _CrashInEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._current_epoch == self.epoch and batch == 1:
            raise _Crash("killed mid-epoch")

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch


def test_killed_run_resumes_from_the_last_epoch(synth_shards, tmp_path):
    config = apply_overrides(
        get_experiment("s2v_tiny"), ["train.epochs=3", "train.steps_per_epoch=3", "train.validation_steps=1"]
    )
    workdir = tmp_path / "run"
    with pytest.raises(_Crash):
        train_lib.train(config, synth_shards, workdir, extra_callbacks=[_CrashInEpoch(1)])
    assert [r["epoch"] for r in json.loads((workdir / "history.json").read_text())] == [1]
    result = train_lib.train(config, synth_shards, workdir)
    assert len(result["history"]["loss"]) == 2  # epochs 2 and 3 only: epoch 1 was not redone
    assert [r["epoch"] for r in result["epochs"]] == [1, 2, 3]
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir())[-1] == "epoch_003.weights.h5"


# The kill-and-resume cases below are about which saved state a run resumes from, the same for every model
# kind: they train the smallest one (the deblurring CNN); the test above resumes Speech2Vid itself.
RESUME_EXPERIMENT = "deblur_tiny"
RESUME = ["train.epochs=3", "train.steps_per_epoch=1", "train.validation_steps=1"]


class _StopBeforeEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Crash("killed between epochs")


@pytest.fixture(scope="module")
def stopped_run(synth_shards, tmp_path_factory):
    """A 3-epoch run killed after its second epoch (copy it before use)."""
    workdir = tmp_path_factory.mktemp("stopped") / "run"
    with pytest.raises(_Crash):
        train_lib.train(
            apply_overrides(get_experiment(RESUME_EXPERIMENT), RESUME),
            synth_shards,
            workdir,
            extra_callbacks=[_StopBeforeEpoch(2)],
        )
    return workdir


def test_the_stopped_run_left_a_trained_workdir(stopped_run):
    _check_trained(stopped_run, RESUME_EXPERIMENT, epochs=2)  # its two whole epochs


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_run_killed_while_saving_its_epoch_resumes(stopped_run, synth_shards, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    shutil.copytree(stopped_run, workdir)
    save_weights = keras.Model.save_weights

    def killed_halfway(model, filepath, *args, **kwargs):  # the file a kill mid-save leaves
        save_weights(model, filepath, *args, **kwargs)
        _cut(Path(filepath))
        raise _Crash("killed while saving")

    config = apply_overrides(get_experiment(RESUME_EXPERIMENT), RESUME)
    monkeypatch.setattr(keras.Model, "save_weights", killed_halfway)
    with pytest.raises(_Crash):
        train_lib.train(config, synth_shards, workdir)
    monkeypatch.undo()
    result = train_lib.train(config, synth_shards, workdir)
    assert len(result["history"]["loss"]) == 1  # epoch 3 again, from the whole epoch-2 state
    assert [r["epoch"] for r in result["epochs"]] == [1, 2, 3]
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == [f"epoch_00{i}.weights.h5" for i in (1, 2, 3)]


@pytest.mark.parametrize("cut", [False, True])
def test_run_of_the_backup_layout_resumes_or_falls_back_to_a_checkpoint(cut, stopped_run, synth_shards, tmp_path):
    # Runs started before checkpoints/ became the resume point keep their state in BackupAndRestore's backup/.
    workdir = tmp_path / "run"
    shutil.copytree(stopped_run, workdir)
    backup = workdir / "backup"
    backup.mkdir(exist_ok=True)
    (workdir / "checkpoints" / "epoch_002.weights.h5").replace(backup / "latest.weights.h5")
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    if cut:  # killed while BackupAndRestore rewrote it in place
        _cut(backup / "latest.weights.h5")
    result = train_lib.train(apply_overrides(get_experiment(RESUME_EXPERIMENT), RESUME), synth_shards, workdir)
    assert len(result["history"]["loss"]) == (2 if cut else 1)  # from epoch_001, or from the backup's epoch 2
    assert [r["epoch"] for r in result["epochs"]] == [1, 2, 3]


def test_workdir_of_another_config_is_refused(tmp_path):
    config = get_experiment("s2v_tiny")
    workdirs.check_workdir(tmp_path, config)
    workdirs.check_workdir(tmp_path, config)  # same config: fine (resume)
    other = apply_overrides(config, ["model.speech2vid.skip_connections=false", "train.epochs=7"])
    with pytest.raises(workdirs.WorkdirMismatch, match=r"model.speech2vid.skip_connections, train.epochs"):
        workdirs.check_workdir(tmp_path, other)
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads(config.to_json())  # untouched
    # A run started before a config field existed resumes: the new field takes its default.
    older = json.loads(config.to_json())
    del older["model"]["speech2vid"]["separable"]
    (tmp_path / "config.json").write_text(json.dumps(older))
    workdirs.check_workdir(tmp_path, config)
    # So does one written before the model sections (a flat model config), which stays as it was written.
    flat = json.loads(config.to_json())
    sections = {k: flat["model"].pop(k) for k in list(flat["model"]) if isinstance(flat["model"][k], dict)}
    for old, path in LEGACY_MODEL_FIELDS.items():
        section, field = path.split(".")
        flat["model"][old] = sections[section][field]
    (tmp_path / "config.json").write_text(json.dumps(flat))
    workdirs.check_workdir(tmp_path, config)
    assert json.loads((tmp_path / "config.json").read_text()) == flat
    with pytest.raises(workdirs.WorkdirMismatch, match=r"model.speech2vid.skip_connections, train.epochs"):
        workdirs.check_workdir(tmp_path, other)


@pytest.mark.parametrize("data", ["typo", "good,typo", "no_validation"])
def test_bad_data_is_refused_before_the_workdir_is_locked(data, synth_shards, tmp_path):
    no_validation = tmp_path / "no_validation"  # prepared, but its validation shards are gone
    no_validation.mkdir()
    for name in ("prepare_config.json", "train-00000-of-00001.tfrecord"):
        shutil.copy(synth_shards / name, no_validation / name)
    given = ",".join({"good": str(synth_shards)}.get(d, str(tmp_path / d)) for d in data.split(","))
    workdir = tmp_path / "run"
    with pytest.raises((ValueError, FileNotFoundError), match="typo|validation shards"):
        train_lib.train(get_experiment("s2v_tiny"), given, workdir)
    assert not (workdir / "config.json").exists()
    fixed = apply_overrides(get_experiment("s2v_tiny"), ["train.epochs=7"])  # the corrected command, another config
    workdirs.check_workdir(workdir, fixed)


def test_workdir_that_is_a_file_is_one_error_line(synth_shards, tmp_path, run_main_here):
    # What `python -m keras_s2v.train --workdir run.txt` runs once its flags are parsed, in this process: the
    # command itself runs in test_an_experiment_trains_through_the_cli.
    workdir = tmp_path / "run.txt"
    workdir.write_text("mine")
    status, stderr = run_main_here(lambda: train_lib.train(get_experiment("s2v_tiny"), synth_shards, workdir))
    assert status == 2, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith(f"error: {workdir}: not a folder")
    assert "Traceback" not in stderr and workdir.read_text() == "mine"


@pytest.mark.parametrize("where", ["under_a_file", "read_only"])
def test_workdir_that_cannot_be_created_is_named_before_any_work(where, synth_shards, tmp_path, monkeypatch):
    import errno
    import os
    import pathlib
    import re

    parent = tmp_path / "parent"
    if where == "under_a_file":
        parent.write_text("a file")
    else:
        parent.mkdir()
        parent.chmod(0o555)
        if os.geteuid() == 0:  # root writes anyway: fail mkdir the way a read-only folder does for anyone else

            def refused(self, *args, **kwargs):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

            monkeypatch.setattr(pathlib.Path, "mkdir", refused)
    monkeypatch.setattr(train_lib, "build_trainable", lambda *a: pytest.fail("work started"))
    expected = re.escape(str(parent / "run")) + r": cannot write the run folder \((Not a directory|Permission denied)\)"
    with pytest.raises(ValueError, match=expected):
        train_lib.train(get_experiment("s2v_tiny"), synth_shards, parent / "run")


def test_deblur_reduces_l1_on_blurred_faces(synth_shards):
    keras.utils.set_random_seed(0)
    config = get_experiment("deblur_tiny")
    model = train_lib.build_model(config)
    train_lib.compile_model(model, config)
    train, validation = train_lib.make_datasets(config, synth_shards, 8)
    model.fit(train, steps_per_epoch=30, epochs=1, verbose=0)
    blurred, deblurred = [], []
    for x, y in validation.take(4):
        blurred.append(float(np.abs(np.asarray(x) - np.asarray(y)).mean()))
        deblurred.append(float(np.abs(np.asarray(model(x)) - np.asarray(y)).mean()))
    assert np.mean(deblurred) < np.mean(blurred), (blurred, deblurred)


def test_checkpoints_of_which_none_loads_are_named(tmp_path):
    from keras_s2v.training.callbacks import CheckpointsUnreadable, EpochCheckpoints

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((4, 2)), np.zeros((4, 1))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[EpochCheckpoints(tmp_path / "checkpoints")])
    (tmp_path / "checkpoints" / "epoch_001.weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(CheckpointsUnreadable, match=r"epoch_001.weights.h5: .*delete this one"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[EpochCheckpoints(tmp_path / "checkpoints", log=lambda _: None)])


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    from keras_s2v.training.callbacks import EpochCheckpoints

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((4, 2)), np.zeros((4, 1))
    model.fit(x, y, epochs=5, verbose=0, callbacks=[EpochCheckpoints(tmp_path / "checkpoints", keep=2)])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "epoch_004.weights.h5",
        "epoch_005.weights.h5",
    ]
