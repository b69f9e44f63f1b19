"""Mixed precision (``train.precision``): a step of every kind in mixed_bfloat16 on the CPU gives float32's losses,
and a run trained so still ships a float32 ``model.keras``."""

import keras
import numpy as np
import pytest

from keras_s2v import workdirs
from keras_s2v.configs.experiments import apply_overrides, get_experiment
from keras_s2v.training import tasks, train_lib

# Every model kind's trainer: Speech2Vid plain and in its LipSyncTrainer (mouth discriminator), the sync
# expert, the deblurring CNN, the temporal GAN, lips at a glance and its flow network's trainer.
CASES = {
    "s2v": ("s2v_tiny", []),
    "s2v_lipsync": ("s2v_tiny", ["train.mouth_adversarial_weight=0.1"]),
    "syncnet": ("syncnet_tiny", []),
    "deblur": ("deblur_tiny", []),
    "tgan": ("tgan_tiny", ["model.tgan.noise_std=0.0", "data.sequence_lengths=4"]),
    "glance": ("glance_tiny", []),
    "lipflow": ("lipflow_tiny", []),  # the glance pretraining's own trainer (its autoencoder compiles as deblur)
}
# bfloat16 keeps 8 bits of mantissa (0.4 % per rounding); the tiny networks' first-step losses moved by
# 0.005 .. 0.6 % (measured; the largest: Speech2Vid in its LipSyncTrainer).
RELATIVE = 0.03


def _trainable(config):
    if config.model.kind != "glance":
        return train_lib.build_trainable(config)
    from keras_s2v.models.lip_motion import LipAutoencoder, LipFlowNet
    from keras_s2v.training.tasks.glance import glance_trainer

    width = config.model.width
    with train_lib.dtype_policy("float32"):  # the frozen helpers: trained in float32, loaded as such
        flow, encoder = LipFlowNet(width=width), LipAutoencoder(width=width).encoder
    with train_lib.dtype_policy(config.train.precision):
        return glance_trainer(config, tasks.get_task("glance").build_model(config), flow, encoder)


def _losses(logs):
    return {k: float(v) for k, v in logs.items() if "loss" in k or k in ("d_frame", "d_sequence", "pixel")}


# float16 (the GPUs' mixed precision, loss-scaled) on two trainers with their own train_step: every player's
# optimizer a LossScaleOptimizer.
PRECISION_CASES = [(case, "mixed_bfloat16") for case in sorted(CASES)] + [
    ("tgan", "mixed_float16"),
    ("s2v_lipsync", "mixed_float16"),
]


def _step(config, inputs, target, initial=None):
    """(the trainable's weights before, its losses) after one step of ``config`` on the batch, from ``initial``."""
    keras.utils.set_random_seed(0)
    model = _trainable(config)
    train_lib.compile_model(model, config)
    # One step, eagerly: the same dtypes and loss scaling as in a traced step, without tracing and optimising a
    # graph for each precision (most of this file's time otherwise).
    model.run_eagerly = True
    model(inputs)  # built: a trainer's players have their weights now
    if initial is None:
        initial = model.get_weights()
    else:
        model.set_weights(initial)
    keras.utils.set_random_seed(1)
    losses = _losses(model.train_on_batch(inputs, target, return_dict=True))
    scaled = [o for o in vars(model).values() if isinstance(o, keras.optimizers.LossScaleOptimizer)]
    assert bool(scaled) == (config.train.precision == "mixed_float16")
    return initial, losses


@pytest.fixture(scope="module")
def float32_steps(synth_shards):
    """case -> (its config but the precision, the batch, the float32 step's weights before and losses after).

    Each case's float32 step is taken once, for every precision it is compared with.
    """
    steps = {}

    def get(case):
        if case not in steps:
            name, overrides = CASES[case]
            small = ["data.batch_size=2", "data.augment=false", "data.shuffle_buffer=2", "data.samples_per_segment=1"]
            base = apply_overrides(get_experiment(name), overrides + small)
            inputs, target = next(iter(tasks.get_task(base.model.kind).datasets(base, synth_shards, 2)[0]))
            initial, losses = _step(apply_overrides(base, ["train.precision=float32"]), inputs, target)
            steps[case] = base, (inputs, target), initial, losses
        return steps[case]

    return get


@pytest.mark.parametrize("case, mixed", PRECISION_CASES)
def test_a_mixed_precision_step_gives_float32_losses(case, mixed, float32_steps):
    base, batch, initial, reference = float32_steps(case)
    losses = {"float32": reference}
    _, losses[mixed] = _step(apply_overrides(base, [f"train.precision={mixed}"]), *batch, initial)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert losses["float32"].keys() == losses[mixed].keys() and losses["float32"]
    for key, value in losses["float32"].items():
        assert np.isfinite(losses[mixed][key])
        assert abs(losses[mixed][key] - value) <= RELATIVE * abs(value) + 1e-4, (key, losses)


def test_a_mixed_precision_run_ships_a_float32_model(synth_shards, tmp_path):
    config = apply_overrides(
        get_experiment("s2v_tiny"),
        ["train.precision=mixed_bfloat16", "train.epochs=1", "train.steps_per_epoch=1", "train.validation_steps=1"],
    )
    train_lib.train(config, synth_shards, tmp_path / "run")
    model = workdirs.load_trained_model(tmp_path / "run")
    assert {layer.dtype_policy.name for layer in model._flatten_layers()} == {"float32"}
    faces, mfcc = np.zeros((1, 112, 112, 3), np.float32), np.zeros((1, 12, 35), np.float32)
    assert model({"faces": faces, "mfcc": mfcc}).dtype == "float32"


def test_an_unknown_precision_is_refused(synth_shards, tmp_path):
    config = apply_overrides(get_experiment("s2v_tiny"), ["train.precision=float8"])
    with pytest.raises(ValueError, match="unknown train.precision 'float8'"):
        train_lib.check_inputs(config, synth_shards)
