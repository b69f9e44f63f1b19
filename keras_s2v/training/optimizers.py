"""The optimizers an experiment names (``train.optimizer``, ``train.lr_schedule``), built from its config."""

from __future__ import annotations

from keras_s2v.configs.experiments import ExperimentConfig

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def loss_scaled(optimizer, config: ExperimentConfig):
    """``optimizer``, in a ``LossScaleOptimizer`` under ``mixed_float16`` (float16 gradients underflow without it).

    A trainer's own ``train_step`` takes gradients of ``optimizer.scale_loss(loss)`` (the loss itself
    without loss scaling); ``apply_gradients`` unscales them and skips a step whose gradients overflowed.
    """
    import keras

    if config.train.precision == "mixed_float16" and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def make_optimizer(config: ExperimentConfig, learning_rate: float | None = None):
    """The configured optimizer at ``train.learning_rate`` (or ``learning_rate``: a discriminator's),
    ``loss_scaled``."""
    import keras

    t = config.train
    rate = t.learning_rate if learning_rate is None else learning_rate
    if t.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, max(1, t.epochs * t.steps_per_epoch), alpha=0.05)
    elif t.lr_schedule != "constant":
        raise ValueError(f"unknown lr_schedule {t.lr_schedule!r} ({', '.join(LR_SCHEDULES)})")
    if t.optimizer == "sgd":
        return loss_scaled(keras.optimizers.SGD(rate, momentum=t.momentum), config)
    if t.optimizer == "adam":
        return loss_scaled(
            keras.optimizers.Adam(rate, beta_1=t.adam_beta_1, weight_decay=t.weight_decay or None), config
        )
    raise ValueError(f"unknown optimizer {t.optimizer!r} ({', '.join(OPTIMIZERS)})")
