"""Temporal GAN training: one player per tape, the discriminators learn, bucketed sequences."""

import types

import keras
import numpy as np
import pytest

from keras_s2v.configs.experiments import get_experiment
from keras_s2v.data import audio, pipeline
from keras_s2v.training import gan, train_lib


@pytest.fixture(scope="module")
def batch(synth_shards):
    dataset = pipeline.sequence_dataset(synth_shards, "train", 4, [4], "pcm", shuffle_buffer=8, augment=False)
    return next(iter(dataset))


@pytest.fixture(scope="module")
def trainer():
    """tgan_tiny's trainer, its discriminators at 1e-3 (the sequence one's 5e-5 moves too little in 8 steps)."""
    keras.utils.set_random_seed(0)
    config = get_experiment("tgan_tiny")
    config.train.d_frame_learning_rate = config.train.d_sequence_learning_rate = 1e-3
    trainer = train_lib.build_trainable(config)
    train_lib.compile_model(trainer, config)
    trainer.run_eagerly = True  # a few steps: tracing them would cost more than running them (full runs trace)
    return trainer


def _logits(trainer, batch):
    """Mean logits as the discriminator losses see them (training mode: batch statistics, 8 steps move little else)."""
    inputs, real = batch
    fake = trainer.generator({**inputs, "noise": trainer.noise(inputs["audio"])}, training=False)
    scores = {}
    for name, frames in (("real", real), ("fake", fake)):
        scores[f"frame_{name}"] = float(np.mean(trainer._frame_logits(frames, inputs["faces"], training=True)))
        scores[f"sequence_{name}"] = float(
            np.mean(trainer.sequence_discriminator({"frames": frames, "audio": inputs["audio"]}, training=True))
        )
    return scores


def test_discriminators_alone_learn_to_score_real_above_generated(trainer, batch):
    generator_before = [np.array(w) for w in trainer.generator.weights]
    frame_before = [np.array(w) for w in trainer.frame_discriminator.trainable_weights]
    for _ in range(8):
        trainer.train_discriminators(batch)
    scores = _logits(trainer, batch)
    assert scores["frame_real"] > scores["frame_fake"], scores
    assert scores["sequence_real"] > scores["sequence_fake"], scores
    # Only the discriminators moved: the generator's weights (BatchNorm statistics too) are untouched.
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(generator_before, trainer.generator.weights))
    assert any(
        not np.allclose(a, np.array(b)) for a, b in zip(frame_before, trainer.frame_discriminator.trainable_weights)
    )


def test_a_gan_step_updates_every_player_and_logs_its_losses(trainer, batch):
    before = {
        name: [np.array(w) for w in getattr(trainer, name).trainable_weights]
        for name in ("generator", "frame_discriminator", "sequence_discriminator")
    }
    logs = trainer.train_on_batch(*batch, return_dict=True)
    assert {"loss", "g_loss", "g_adversarial", "d_frame", "d_sequence"} <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())
    assert logs["g_loss"] == pytest.approx(logs["g_adversarial"] + 400.0 * logs["loss"], rel=1e-4)
    for name, weights in before.items():
        assert any(
            not np.allclose(a, np.array(b)) for a, b in zip(weights, getattr(trainer, name).trainable_weights)
        ), name


def test_learning_rate_drop_after_the_given_epoch():
    trainer = types.SimpleNamespace(
        g_optimizer=keras.optimizers.Adam(2e-4), d_frame_optimizer=keras.optimizers.Adam(1e-3)
    )
    drop = gan.LearningRateDrop({"g_optimizer": 2e-4, "d_frame_optimizer": 1e-3}, epoch=2, factor=0.5)
    drop.set_model(trainer)
    rates = []
    for epoch in range(4):
        drop.on_epoch_begin(epoch)
        rates.append((float(trainer.g_optimizer.learning_rate), float(trainer.d_frame_optimizer.learning_rate)))
    np.testing.assert_allclose(rates, [(2e-4, 1e-3), (2e-4, 1e-3), (1e-4, 5e-4), (1e-4, 5e-4)], rtol=1e-6)


def test_bucketed_sequences_hold_one_length_per_batch_and_the_frames_own_audio(synth_shards):
    dataset = pipeline.sequence_dataset(synth_shards, "train", 2, [3, 6], "mfcc", shuffle_buffer=4, seed=1)
    lengths = set()
    for inputs, frames in dataset.take(12):
        steps = frames.shape[1]
        lengths.add(steps)
        assert inputs["audio"].shape == (2, steps, audio.MFCC_COEFFS, audio.MFCC_WINDOW_HOPS)
        assert inputs["faces"].shape == (2, 112, 112, 3)
    assert lengths == {3, 6}
    # The raw windows are each frame's own 0.16 s, centred on it (audio.window_range).
    import tensorflow as tf

    from keras_s2v.data import features

    example = features.decode_example(next(iter(tf.data.TFRecordDataset(pipeline.shard_files(synth_shards, "train")))))
    windows = pipeline._audio_windows(example, tf.constant(5), 2, "pcm").numpy()
    pcm = example["pcm"].numpy()
    start = audio.segment_window_start(6, audio.WAVE_WINDOW_SAMPLES)
    np.testing.assert_array_equal(windows[1], pcm[start : start + audio.WAVE_WINDOW_SAMPLES])
