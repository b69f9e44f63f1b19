"""A task: what one model kind trains (TF Model Garden's ``base_task`` and ``task_factory``, at this size).

Each model kind (``config.model.kind``) has one ``Task`` subclass, registered by kind with
``register_task``; ``train_lib`` asks ``get_task`` for it and drives any task the same way:

1. ``check_inputs``: the kind's own checks of the config, cheap (no model built, no shard read);
2. ``pretrained_helpers``: frozen models it trains with that are trained first when not given
   (a glance model's flow network and autoencoder);
3. ``build_model``: what ships as ``model.keras``; ``build_trainable``: what ``fit`` runs around it
   (the model itself, or a trainer with its discriminators and critics);
4. ``datasets``: the (train, validation) tf.data pipelines;
5. ``compile``: optimizers, losses and metrics; ``callbacks``: the kind's own, beside the common ones;
   ``image_grid``: whether validation images are drawn each epoch (generators).

Adding a model kind adds one task module (imported by ``tasks/__init__.py``) and touches no switchboard.
"""

from __future__ import annotations

from keras_s2v.configs.experiments import ExperimentConfig
from keras_s2v.training.optimizers import make_optimizer

_TASKS: dict[str, type] = {}
SYNC_WEIGHT_NEEDS = (
    "train.sync_weight needs a one-image Speech2Vid and model.speech2vid.sync_model (a trained sync expert)"
)


class Task:
    """The training of one model kind; the defaults are those of a plain model trained by ``compile``/``fit``."""

    kind = ""
    image_grid = True  # identity | generated | truth each epoch (a generator's); False for embeddings and flows

    def check_inputs(self, config: ExperimentConfig) -> None:
        """Raise on what this kind cannot train with; the critics of ``training.lipsync`` are Speech2Vid's alone."""
        if config.train.sync_weight:
            raise ValueError(SYNC_WEIGHT_NEEDS)
        if config.train.mouth_adversarial_weight:
            raise ValueError(f"train.mouth_adversarial_weight is Speech2Vid's alone, not {self.kind}'s")

    def pretrained_helpers(self, config: ExperimentConfig) -> dict:
        """``{role: (model config field, the helper's experiment config)}``: frozen models trained first into
        ``<workdir>/<role>`` unless the field (a dotted path under ``model``, e.g. ``glance.flow_model``) names a
        trained workdir (``train_lib.pretrained_workdirs``)."""
        return {}

    def build_model(self, config: ExperimentConfig):
        """The Keras model this kind ships (saved as ``model.keras``)."""
        raise NotImplementedError

    def build_trainable(self, config: ExperimentConfig, model, pretrained: dict):
        """What ``fit`` runs around ``model``; ``pretrained``: ``{role: trained workdir}`` of the helpers."""
        return model

    def datasets(self, config: ExperimentConfig, data_dir, global_batch: int, shard: tuple[int, int] | None = None):
        """(train, validation) tf.data pipelines of ``global_batch`` examples; ``shard``: ``(index, count)``,
        the training input reads only input pipeline ``index``'s part of the files (``pipeline.shard_files``:
        one worker's under ``data.shard_by=file``), the validation input all of them."""
        raise NotImplementedError

    def compile(self, model, config: ExperimentConfig) -> None:
        """Optimizers, losses and metrics of ``build_trainable``'s model."""
        raise NotImplementedError

    def callbacks(self, config: ExperimentConfig) -> list:
        """Callbacks of this kind, after the common checkpoints, best model, logs and early stopping."""
        return []


def register_task(kind: str):
    """Class decorator: the task of model kind ``kind``."""

    def wrap(cls):
        if kind in _TASKS:
            raise ValueError(f"model kind {kind!r} has a task already ({_TASKS[kind].__name__})")
        cls.kind = kind
        _TASKS[kind] = cls
        return cls

    return wrap


def task_kinds() -> tuple[str, ...]:
    """The registered model kinds, sorted."""
    return tuple(sorted(_TASKS))


def get_task(kind: str) -> Task:
    """The task that trains model kind ``kind``; an unknown kind is a ValueError naming the known ones."""
    if kind not in _TASKS:
        raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(sorted(_TASKS))})")
    return _TASKS[kind]()


def splits(config: ExperimentConfig, shard: tuple[int, int] | None = None) -> tuple[dict, dict]:
    """Keyword arguments of ``pipeline``'s frame, sequence and glance datasets: (training split, validation split);
    ``shard``: ``Task.datasets``'."""
    d = config.data
    train = {
        "samples_per_segment": d.samples_per_segment,
        "training": True,
        "shuffle_buffer": d.shuffle_buffer,
        "augment": d.augment,
        "seed": config.train.seed,
        "cache": d.cache,
        "parallel_segments": d.parallel_segments,
        "shard": shard,
    }
    return train, {"samples_per_segment": d.validation_samples_per_segment, "training": False}


def reconstruction_loss(config: ExperimentConfig):
    """L1 (the papers'); with ``train.mouth_weight``, ``ssim_weight`` or a critic: ``FaceReconstructionLoss``."""
    import keras

    t = config.train
    if t.mouth_weight or t.ssim_weight or t.sync_weight or t.mouth_adversarial_weight:
        from keras_s2v.training.losses import FaceReconstructionLoss

        return FaceReconstructionLoss(t.mouth_weight, t.ssim_weight)
    return keras.losses.MeanAbsoluteError(name="l1")


def compile_reconstruction(model, config: ExperimentConfig) -> None:
    """A model trained to reproduce frames: ``reconstruction_loss`` as a keras.losses.Loss (scaled right across
    replicas), PSNR and SSIM as metrics."""
    from keras_s2v.training import metrics

    model.compile(
        optimizer=make_optimizer(config), loss=reconstruction_loss(config), metrics=[metrics.psnr, metrics.ssim]
    )
