"""The training workdir contract: what ``train`` writes, what every other command reads.

Workdir layout::

    config.json          resolved experiment config, written once the data and
                         the config are checked; a workdir holding another
                         config is refused
    checkpoints/         weights and optimizer state after every epoch, each
                         written whole (renamed into place): a restarted run
                         resumes from the newest that loads
    backup/              BackupAndRestore state of runs started before
                         checkpoints/ was the resume point (still resumed)
    model.keras          the best model by validation loss (what export and
                         generate load)
    logs/                TensorBoard scalars and image grids
    samples/latest.png   identity | generated | ground truth, last epoch
    history.json         per-epoch metrics
    data.json            the shard folder of the latest run

Under several workers (``train --strategy multi_worker``) the chief alone writes it; every worker
resumes from its checkpoints (``training.distribute``).

Below training and the runtime: ``train`` writes through ``check_workdir`` and
``write_run_file``; export, the backends and the sync expert read through
``load_trained_model`` and the file names here, without importing the trainer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keras_s2v.configs.experiments import ExperimentConfig

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
DATA_FILE = "data.json"  # where the shards were (export calibrates int8 on them); not part of the config


# What each model kind's model.keras holds (a GAN's: its generator alone).
MODEL_CLASSES = {
    "speech2vid": "Speech2Vid",
    "deblur": "DeblurCNN",
    "syncnet": "SyncNet",
    "tgan": "TemporalGenerator",
    "glance": "GlanceGenerator",
    "lipflow": "LipFlowNet",
    "lipae": "LipAutoencoder",
}
MODEL_KINDS = tuple(MODEL_CLASSES)


class WorkdirMismatch(ValueError):
    """The workdir already holds a run with another config."""


def write_run_file(path: Path, text: str) -> None:
    """Written beside and renamed; an unwritable run folder is a ValueError naming it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as error:
        raise ValueError(f"{path.parent}: cannot write the run folder ({error.strerror or error})") from None


def check_workdir(workdir, config: ExperimentConfig, write: bool = True) -> None:
    """Write ``config.json``, or refuse a workdir that holds a run with another config.

    ``write=False``: compare only (a training worker that is not the chief writes nothing here)."""
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"{workdir}: not a folder (--workdir is the run folder, created if missing)")
    saved = workdir / CONFIG_FILE
    if saved.exists():
        previous = json.loads(saved.read_text())
        try:  # fields added since the run started take their defaults; a flat model config its sections
            previous = json.loads(ExperimentConfig.from_dict(previous).to_json())
        except (KeyError, TypeError, ValueError):
            pass
        if previous != json.loads(config.to_json()):
            changed = _diff(previous, json.loads(config.to_json()))
            raise WorkdirMismatch(
                f"{workdir} holds a run of another config ({', '.join(changed)} differ); "
                "use a new --workdir, or delete this one to start again"
            )
        return
    if write:
        write_run_file(saved, config.to_json())


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += _diff(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            out.append(f"{prefix}{key}")
    return out


def load_trained_model(workdir):
    """The best model saved by ``train`` in ``workdir``; a cut, corrupt or foreign one is a ``ModelError`` naming it."""
    import keras_s2v.models.deblur
    import keras_s2v.models.glance
    import keras_s2v.models.lip_motion
    import keras_s2v.models.speech2vid
    import keras_s2v.models.syncnet
    import keras_s2v.models.temporal_gan  # noqa: F401
    from keras_s2v import model_files

    path = Path(workdir) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained model (train with python -m keras_s2v.train --workdir {workdir})")
    try:
        kind = json.loads((Path(workdir) / CONFIG_FILE).read_text())["model"]["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        kind = None  # no config to say which model it holds: any
    return model_files.load_keras(path, MODEL_CLASSES.get(kind) if isinstance(kind, str) else None)
