"""Training: config -> model, data, a tf.distribute strategy, fit with checkpoints that survive a crash.

What each model kind builds, reads and compiles is its task's (``training.tasks``, registered by
``config.model.kind``); this module drives any task the same way and names no kind. The workdir it
writes, and how other commands read it, is ``keras_s2v.workdirs``.
"""

from __future__ import annotations

import contextlib
import json
import operator
from pathlib import Path

from keras_s2v.configs.experiments import ExperimentConfig
from keras_s2v.training.optimizers import LR_SCHEDULES, OPTIMIZERS, PRECISIONS
from keras_s2v.training.tasks import get_task
from keras_s2v.workdirs import CONFIG_FILE, DATA_FILE, MODEL_FILE, check_workdir, load_trained_model, write_run_file


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers built inside compute in ``name`` (``train.precision``: ``float32``, ``mixed_bfloat16``,
    ``mixed_float16``); their variables stay float32. The global policy is restored after."""
    import keras

    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r} ({', '.join(PRECISIONS)})")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(config: ExperimentConfig):
    """The Keras model an experiment ships as ``model.keras``: float32, whatever ``train.precision`` trains in."""
    with dtype_policy("float32"):
        return get_task(config.model.kind).build_model(config)


def shipped_float32(config: ExperimentConfig):
    """``select`` of the model saved as ``model.keras``: the trained model's shipped part, or under mixed
    precision a float32 twin holding its weights (float32 inputs and outputs for export and inference)."""
    from keras_s2v.training.trainer import shipped_model

    if config.train.precision == "float32":
        return shipped_model
    twin = build_model(config)

    def select(trained):
        twin.set_weights(shipped_model(trained).get_weights())
        return twin

    return select


def build_trainable(config: ExperimentConfig, pretrained: dict | None = None):
    """What ``fit`` runs: the model itself, or for a GAN the trainer around the generator and its discriminators.

    ``pretrained``: the task's trained helper workdirs, e.g. a glance model's
    ``{"flow": path, "perceptual": path}`` (``pretrained_workdirs``).
    """
    task = get_task(config.model.kind)
    with dtype_policy(config.train.precision):  # the trainer and its players too: a trainer's own policy decides
        model = task.build_model(config)  # whether compile() wraps its optimizer in a LossScaleOptimizer
        if config.model.init_from:
            from keras_s2v import pretrained as presets

            model.set_weights(load_trained_model(presets.resolve(config.model.init_from)).get_weights())
        return task.build_trainable(config, model, pretrained or {})


def pretrained_workdirs(config: ExperimentConfig, data_dir, workdir, log=print, strategy=None) -> dict:
    """The frozen helpers the experiment's task trains with (a glance model's flow network and autoencoder):
    the configured workdirs, or trained first into ``<workdir>/<role>`` (resumed like any run when interrupted,
    under ``strategy``, the experiment's). ``{}`` for a task without helpers."""
    found = {}
    for role, (field, helper) in get_task(config.model.kind).pretrained_helpers(config).items():
        given = operator.attrgetter(field)(config.model)
        if given:
            if not (Path(given) / MODEL_FILE).exists():
                raise FileNotFoundError(f"{given}: model.{field} has no trained {MODEL_FILE}")
            found[role] = Path(given)
            continue
        path = Path(workdir) / role
        if not (path / MODEL_FILE).exists() or not (path / "history.json").exists() or _unfinished(path, helper):
            log(f"training the {role} network ({helper.model.kind}) into {path}")
            train(helper, data_dir, path, strategy=strategy)
        found[role] = path
    return found


def _unfinished(path: Path, helper: ExperimentConfig) -> bool:
    records = json.loads((path / "history.json").read_text())
    return len(records) < helper.train.epochs


def make_datasets(config: ExperimentConfig, data_dir, global_batch: int, shard: tuple[int, int] | None = None):
    """(train, validation) tf.data pipelines for the experiment's model kind; ``shard``: ``Task.datasets``'."""
    return get_task(config.model.kind).datasets(config, data_dir, global_batch, shard)


def compile_model(model, config: ExperimentConfig) -> None:
    """The task's optimizers, losses (each a keras.losses.Loss, scaled right across replicas) and metrics;
    XLA-compiled steps with ``train.jit_compile``."""
    get_task(config.model.kind).compile(model, config)
    model.jit_compile = config.train.jit_compile


def check_inputs(config: ExperimentConfig, data_dir, workers: int = 1) -> dict:
    """What ``train`` reads, checked before it writes anything -> the ``data.json`` record.

    The shard folders (``pipeline.data_dirs``: comma-separated allowed) are
    prepared and hold both splits, and with ``data.shard_by=file`` a training
    shard file for each of the ``workers``; the model kind, optimizer and audio input
    are known; files and workdirs the config names exist. Cheap: no model is
    built, no shard is read.
    """
    from keras_s2v.data import pipeline, prepared
    from keras_s2v.training.distribute import SHARD_BY

    folders = [str(Path(d).resolve()) for d in pipeline.data_dirs(data_dir)]
    if not folders:
        raise ValueError(f"{data_dir!r}: no shard folder given")
    record = {"data_dir": ",".join(folders), "data_parameters": prepared.data_parameters(folders)}
    for split in dict.fromkeys((config.data.train_split, config.data.validation_split)):
        pipeline.shard_files(data_dir, split)
    if config.data.shard_by not in SHARD_BY:
        raise ValueError(f"unknown data.shard_by {config.data.shard_by!r} ({', '.join(SHARD_BY)})")
    if config.data.shard_by == "file" and workers > 1:
        for worker in range(workers):
            pipeline.shard_files(data_dir, config.data.train_split, (worker, workers))
    task = get_task(config.model.kind)
    if config.train.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.train.optimizer!r} ({', '.join(OPTIMIZERS)})")
    if config.train.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {config.train.lr_schedule!r} ({', '.join(LR_SCHEDULES)})")
    if config.train.precision not in PRECISIONS:
        raise ValueError(f"unknown train.precision {config.train.precision!r} ({', '.join(PRECISIONS)})")
    from keras_s2v import pretrained as presets

    given = config.model.init_from
    if given and not (Path(presets.resolve(given)) / MODEL_FILE).exists():
        raise FileNotFoundError(f"{given}: model.init_from is neither a trained workdir nor a preset")
    task.check_inputs(config)
    return record


def train(config: ExperimentConfig, data_dir, workdir, strategy=None, extra_callbacks=()) -> dict:
    """Train an experiment; re-running the same call resumes from the last finished epoch.

    ``strategy``: a ``tf.distribute`` strategy or its name (``distribute.STRATEGIES``, created first
    thing; default ``mirrored``). Under several workers every worker makes this same call, the chief
    writes the workdir and the others their own temporary folders (``training.distribute``).
    Returns the history (per-epoch metrics, this invocation's epochs only),
    where the model was saved and how the workers split the input (``data.shard_by``).
    A task with frozen helpers (a glance model) first trains those it is not given
    (``pretrained_workdirs``).
    """
    from keras_s2v.training import distribute

    if strategy is None or isinstance(strategy, str):
        strategy = distribute.make_strategy(strategy or "mirrored")  # before any other TensorFlow op
    import keras
    import tensorflow as tf

    from keras_s2v.training.callbacks import EpochCheckpoints, HistoryFile, ImageGrid, SaveBest

    workdir = Path(workdir)
    # First: a mistyped --data must not leave a config that locks the workdir.
    record = check_inputs(config, data_dir, distribute.num_workers(strategy))
    task = get_task(config.model.kind)
    chief = distribute.is_chief(strategy)
    check_workdir(workdir, config, write=chief)
    if chief:
        write_run_file(workdir / DATA_FILE, json.dumps(record, indent=1) + "\n")
    distribute.barrier(strategy)  # the chief's config.json is there for the others
    distribute.check_shared(workdir, strategy, CONFIG_FILE)
    pretrained = pretrained_workdirs(config, data_dir, workdir, strategy=strategy)
    keras.utils.set_random_seed(config.train.seed)
    global_batch = config.data.batch_size * strategy.num_replicas_in_sync  # all replicas of all workers
    train_ds, val_ds = task.datasets(config, data_dir, global_batch)
    train_ds = distribute.training_input(
        strategy,
        train_ds,
        lambda batch, shard: task.datasets(config, data_dir, batch, shard)[0],
        global_batch,
        config.data.shard_by,
    )
    val_ds = distribute.sharded(val_ds.take(config.train.validation_steps).cache())
    with strategy.scope():
        model = build_trainable(config, pretrained)
        compile_model(model, config)

    with distribute.write_dir(workdir, strategy) as out:
        callbacks = [
            EpochCheckpoints(
                workdir / "checkpoints",
                legacy_backup=workdir / "backup",
                write_to=out / "checkpoints",
                agree=lambda epoch: distribute.gather_ints(strategy, epoch),
            ),
            SaveBest(out / MODEL_FILE, shipped_float32(config), monitor="val_loss"),
            keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False),
            HistoryFile(out / "history.json"),
            *extra_callbacks,
        ]
        if config.train.early_stopping_patience > 0:
            callbacks.append(
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.train.early_stopping_patience)
            )
        callbacks += task.callbacks(config)
        if task.image_grid:  # generators: identity | generated | truth each epoch
            grid_batch = next(iter(val_ds.unbatch().batch(config.train.image_grid_size)))
            callbacks.append(ImageGrid(grid_batch, out / "logs" / "images", out / "samples"))
        with distribute.worker_loss_explained(strategy):
            history = model.fit(
                train_ds,
                epochs=config.train.epochs,
                steps_per_epoch=config.train.steps_per_epoch,
                validation_data=val_ds,
                callbacks=callbacks,
                verbose=2,
            )
    distribute.barrier(strategy)  # the chief's files are whole before any worker reads them (a glance helper's)
    records = json.loads((workdir / "history.json").read_text()) if (workdir / "history.json").exists() else []
    return {
        "history": history.history,
        "epochs": records,
        "model": str(workdir / MODEL_FILE),
        "replicas": strategy.num_replicas_in_sync,
        "workers": distribute.num_workers(strategy),
        "chief": chief,
        # How the workers split the training input: "file" where each read its own shard files (a DistributedDataset).
        "input_split": "data" if isinstance(train_ds, tf.data.Dataset) else "file",
    }
