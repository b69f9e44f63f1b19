"""Speech2Vid with the frozen sync expert's loss: the expert's audio is the contract's, only the generator learns."""

import keras
import numpy as np
import pytest

from keras_s2v.configs import experiments
from keras_s2v.data import audio, pipeline
from keras_s2v.training import lipsync, train_lib


def test_the_experts_audio_is_the_contracts_sync_window(synth_shards):
    import tensorflow as tf

    from keras_s2v.data import features

    ((x, _),) = pipeline.sequence_dataset(
        synth_shards, "train", 2, (5,), "mfcc", samples_per_segment=1, training=False
    ).take(1)
    example = features.decode_example(next(iter(tf.data.TFRecordDataset(pipeline.shard_files(synth_shards, "train")))))
    centre = 2  # evenly spaced windows: the first covers frames 0 .. 4
    expected = example["mfcc"].numpy()[:, slice(*audio.sync_mfcc_slice(centre))]
    np.testing.assert_allclose(np.asarray(lipsync.sync_mfcc(x["audio"]))[0], expected, atol=1e-6)


@pytest.fixture(scope="module")
def expert(synth_shards, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("expert")
    config = experiments.apply_overrides(
        experiments.get_experiment("syncnet_real_tiny"),
        ["train.epochs=1", "train.steps_per_epoch=2", "train.validation_steps=1"],
    )
    train_lib.train(config, synth_shards, workdir)
    return workdir


class _PlayersWeights(keras.callbacks.Callback):
    """Keeps the trainer, and its generator's and expert's weights when its training starts and ends."""

    def on_train_begin(self, logs=None):
        self.trainer, self.before = self.model, self._weights()

    def on_train_end(self, logs=None):
        self.after = self._weights()

    def _weights(self):
        return {name: [np.array(w) for w in getattr(self.model, name).weights] for name in ("generator", "expert")}


def test_a_step_moves_the_generator_and_leaves_the_expert(expert, synth_shards, tmp_path):
    config = experiments.apply_overrides(
        experiments.get_experiment("s2v_real_tiny"),
        [
            "train.sync_weight=0.5",
            f"model.speech2vid.sync_model={expert}",
            "train.epochs=1",
            "train.steps_per_epoch=2",
            "train.validation_steps=1",
        ],
    )
    players = _PlayersWeights()
    result = train_lib.train(config, synth_shards, tmp_path / "run", extra_callbacks=[players])
    assert isinstance(players.trainer, lipsync.LipSyncTrainer) and players.trainer.crop == "mouth"
    logs = result["history"]
    assert 0.0 <= logs["sync_distance"][-1] <= 2.0 and np.isfinite(logs["loss"][-1])
    before, after = players.before, players.after
    assert any(not np.allclose(a, b) for a, b in zip(before["generator"], after["generator"]))
    assert all(np.array_equal(a, b) for a, b in zip(before["expert"], after["expert"]))
    # What ships is the generator: one frame per (face, MFCC window), as generate and the export run it.
    assert type(keras.saving.load_model(result["model"], compile=False)).__name__ == "Speech2Vid"


def test_sync_weight_without_an_expert_is_refused_before_the_workdir(synth_shards, tmp_path):
    config = experiments.apply_overrides(experiments.get_experiment("s2v_real_tiny"), ["train.sync_weight=0.5"])
    with pytest.raises(ValueError, match="model.speech2vid.sync_model"):
        train_lib.train(config, synth_shards, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_mouth_discriminator_trains_on_its_own_tape(expert, synth_shards):
    config = experiments.apply_overrides(
        experiments.get_experiment("s2v_real_tiny"),
        [
            "train.sync_weight=0.5",
            f"model.speech2vid.sync_model={expert}",
            "train.mouth_adversarial_weight=0.1",
            "train.steps_per_epoch=1",
            "train.validation_steps=1",
        ],
    )
    trainer = train_lib.build_trainable(config)
    train_lib.compile_model(trainer, config)
    trainer.run_eagerly = True  # one step: tracing it would cost more than running it (train_lib.train traces)
    assert trainer.discriminator.input["frame"].shape[1:] == (56, 56, 3)  # the mouth box (align.lip_box)
    before = {
        name: [np.array(w) for w in getattr(trainer, name).weights] for name in ("generator", "discriminator", "expert")
    }
    train, val = train_lib.make_datasets(config, synth_shards, 2)
    logs = trainer.fit(train, epochs=1, steps_per_epoch=1, validation_data=val, validation_steps=1, verbose=0).history
    assert {"adversarial", "d_loss", "val_adversarial", "val_d_loss"} <= set(logs)
    assert all(np.isfinite(logs[k][-1]) and logs[k][-1] > 0 for k in ("adversarial", "d_loss", "val_d_loss"))
    moved = {
        name: any(not np.allclose(a, np.array(b)) for a, b in zip(before[name], getattr(trainer, name).weights))
        for name in before
    }
    assert moved == {"generator": True, "discriminator": True, "expert": False}


def test_the_mouth_discriminator_trains_without_an_expert(synth_shards):
    config = experiments.apply_overrides(
        experiments.get_experiment("s2v_real_tiny"),
        ["train.mouth_adversarial_weight=0.1", "train.steps_per_epoch=1", "train.validation_steps=1"],
    )
    train_lib.check_inputs(config, synth_shards)
    trainer = train_lib.build_trainable(config)
    assert trainer.expert is None and trainer.discriminator is not None
    train_lib.compile_model(trainer, config)
    trainer.run_eagerly = True
    before = [np.array(w) for w in trainer.generator.weights]
    train, val = train_lib.make_datasets(config, synth_shards, 2)
    logs = trainer.fit(train, epochs=1, steps_per_epoch=1, validation_data=val, validation_steps=1, verbose=0).history
    assert "sync_distance" not in logs and np.isfinite(logs["adversarial"][-1]) and np.isfinite(logs["val_loss"][-1])
    assert any(not np.allclose(a, np.array(b)) for a, b in zip(before, trainer.generator.weights))
    tgan = experiments.apply_overrides(experiments.get_experiment("tgan_tiny"), ["train.mouth_adversarial_weight=0.1"])
    with pytest.raises(ValueError, match="Speech2Vid's alone"):
        train_lib.check_inputs(tgan, synth_shards)
