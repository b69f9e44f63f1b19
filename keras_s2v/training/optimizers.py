"""The optimizers an experiment names (``train.optimizer``, ``train.lr_schedule``), built from its config."""

from __future__ import annotations

from keras_s2v.configs.experiments import ExperimentConfig

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "cosine")


def make_optimizer(config: ExperimentConfig, learning_rate: float | None = None):
    """The configured optimizer at ``train.learning_rate`` (or ``learning_rate``: a discriminator's)."""
    import keras

    t = config.train
    rate = t.learning_rate if learning_rate is None else learning_rate
    if t.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, max(1, t.epochs * t.steps_per_epoch), alpha=0.05)
    elif t.lr_schedule != "constant":
        raise ValueError(f"unknown lr_schedule {t.lr_schedule!r} ({', '.join(LR_SCHEDULES)})")
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=t.momentum)
    if t.optimizer == "adam":
        return keras.optimizers.Adam(rate, beta_1=t.adam_beta_1, weight_decay=t.weight_decay or None)
    raise ValueError(f"unknown optimizer {t.optimizer!r} ({', '.join(OPTIMIZERS)})")
