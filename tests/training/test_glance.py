"""Lips-at-a-glance training: the flow network's training, the trainer's players and pairs."""

import keras
import numpy as np
import pytest

from keras_s2v.configs.experiments import GLANCE_ABLATIONS, apply_overrides, get_experiment
from keras_s2v.training import glance, train_lib
from keras_s2v.training.tasks import glance as glance_task

FRAMES = 8
rng = np.random.default_rng(0)


def test_flow_trainer_learns_a_shift():
    """The flow network learns a 2 px shift from its teacher and the photometric loss; the warp error falls."""
    from keras_s2v.models.lip_motion import LipFlowNet

    keras.utils.set_random_seed(0)
    base = np.asarray(keras.ops.image.resize(rng.random((4, 8, 10, 3)).astype(np.float32), (64, 80)))[:, None]  # smooth
    clips = np.concatenate([base[:, :, :, 8:72], base[:, :, :, 6:70]], axis=1)  # first[x] = second[x + 2]
    teacher = glance.farneback_flows(clips[:, 0], clips[:, 1])[:, None]  # (4, 1, 64, 64, 2)
    inner = np.s_[:, :, 8:-8, 8:-8]
    # Farneback: warp(second, flow)[x] = second[x + dx] = first[x]
    assert abs(teacher[inner][..., 0].mean() - 2.0) < 0.3
    trainer = glance.FlowTrainer(LipFlowNet(width=0.125))
    trainer.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = trainer.evaluate(clips, teacher, verbose=0, return_dict=True)
    trainer.fit(clips, teacher, epochs=30, batch_size=4, verbose=0)
    after = trainer.evaluate(clips, teacher, verbose=0, return_dict=True)
    assert after["photometric"] < 0.8 * before["photometric"] and after["teacher"] < 0.5 * before["teacher"], after
    flow = np.asarray(trainer(clips))[:, 8:-8, 8:-8]
    assert abs(flow[..., 0].mean() - 2.0) < 0.6 and abs(flow[..., 1].mean()) < 0.6, flow.mean(axis=(0, 1, 2))


@pytest.fixture(scope="module")
def trainer():
    """glance_tiny's trainer with fresh (untrained) flow and perceptual networks standing in for trained ones."""
    from keras_s2v.models.lip_motion import LipAutoencoder, LipFlowNet

    keras.utils.set_random_seed(1)
    config = get_experiment("glance_tiny")
    width = config.model.width
    trainer = glance_task.glance_trainer(
        config, train_lib.build_model(config), LipFlowNet(width=width), LipAutoencoder(width=width).encoder
    )
    train_lib.compile_model(trainer, config)
    trainer.run_eagerly = True  # a few steps: tracing them would cost more than running them (full runs trace)
    return trainer


def _batch(batch=2):
    lips = rng.random((batch, 64, 64, 3)).astype(np.float32)
    log_mel = rng.standard_normal((batch, 4 * FRAMES, 128)).astype(np.float32)
    clips = rng.random((batch, FRAMES, 64, 64, 3)).astype(np.float32)
    return {"lips": lips, "log_mel": log_mel}, clips


def test_discriminator_sees_all_three_pair_kinds(trainer):
    inputs, real = _batch()
    fake = np.asarray(trainer.generator(inputs))
    mismatched = np.roll(inputs["log_mel"], 1, axis=0)
    d_loss, logits = trainer.discriminator_losses(
        real, trainer.clip_motion(real), fake, trainer.clip_motion(fake), inputs["log_mel"], mismatched
    )
    assert set(logits) == {"real", "generated", "mismatched"}
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    expected = (
        bce(np.ones((2, 1)), logits["real"])
        + 0.5 * bce(np.zeros((2, 1)), logits["generated"])
        + 0.5 * bce(np.zeros((2, 1)), logits["mismatched"])
    )
    assert float(d_loss) == pytest.approx(float(expected), rel=1e-5)
    # The mismatched pair is the real video with other audio: only the audio stream tells it apart.
    assert not np.allclose(logits["real"], logits["mismatched"])


def test_train_step_moves_every_player_and_leaves_the_frozen_networks(trainer):
    players = {
        "generator": trainer.generator,
        "discriminator": trainer.discriminator,
        "phi_s": trainer.audio_encoder,
        "phi_v": trainer.motion_encoder,
    }
    frozen = {"flow": trainer.flow_net, "perceptual": trainer.perceptual_encoder}
    before = {k: [np.array(w) for w in m.weights] for k, m in {**players, **frozen}.items()}
    logs = trainer.train_on_batch(*_batch(), return_dict=True)
    for name, model in players.items():
        assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(before[name], model.trainable_weights)), name
    for name, model in frozen.items():
        assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(before[name], model.weights)), name
    for key in ("correlation", "correlation_real", "pixel", "perceptual", "adversarial", "d_loss"):
        assert np.isfinite(logs[key]) and logs[key] > 0, key


def test_missing_pretrained_workdir_is_named(tmp_path):
    config = apply_overrides(get_experiment("glance_tiny"), [f"model.glance.flow_model={tmp_path / 'nowhere'}"])
    with pytest.raises(FileNotFoundError, match="nowhere.*flow_model"):
        train_lib.pretrained_workdirs(config, tmp_path / "data", tmp_path / "work", log=lambda _: None)


@pytest.mark.parametrize("name", sorted(GLANCE_ABLATIONS))
def test_each_ablation_builds_the_trainer_it_names(name):
    from keras_s2v.models.lip_motion import LipAutoencoder, LipFlowNet

    config = get_experiment(f"{name}_tiny")
    m, t = config.model, config.train
    trainer = glance_task.glance_trainer(
        config, train_lib.build_model(config), LipFlowNet(width=m.width), LipAutoencoder(width=m.width).encoder
    )
    train_lib.compile_model(trainer, config)
    has_motion = "motion" in trainer.discriminator.input
    assert has_motion == (name != "glance_two_stream")
    if has_motion:
        assert trainer.discriminator.input["motion"].shape[-1] == (3 if name == "glance_framediff" else 2)
    assert (trainer.audio_encoder is None) == (name == "glance_no_corr")
    if name == "glance_plain_corr":
        assert trainer.motion_encoder.input.shape[-1] == 3  # the frames, not their motion
    weights = trainer.weights_
    assert (weights["perceptual"] == 0) == (name == "glance_no_perc") == (t.perceptual_weight == 0)
    assert (weights["pixel"] == 0) == (name == "glance_no_pix")
    assert (weights["adversarial"] == 0) == (name == "glance_no_gan")
    assert (weights["correlation"] == 0) == (name == "glance_no_corr")
