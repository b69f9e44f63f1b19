"""One training step of a tiny experiment under MirroredStrategy with 1 or 2 CPU replicas.

Run in a process of its own (the CPU must be split into logical devices before
TensorFlow starts), from the repository root so it tests this checkout:
``python -m tests.training.replica_step s2v_tiny`` (or ``tgan_tiny``; one per
process: a second strategy's collective ops clash with the first's) prints the
max abs difference between the weights after one step with 1 replica and with 2
replicas on the same global batch. A GAN's step covers all three players;
its noise is off (std 0) so both runs see the same generated frames.
"""

import sys

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402

from keras_s2v.configs.experiments import get_experiment  # noqa: E402
from keras_s2v.training import train_lib  # noqa: E402


def one_step(devices, initial, batch):
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        model = train_lib.build_trainable(config)
        model.set_weights(initial)
        train_lib.compile_model(model, config)
    dataset = tf.data.Dataset.from_tensors(batch)  # one global batch, split across replicas by fit
    model.fit(dataset, epochs=1, verbose=0)
    return model.get_weights()


for name in sys.argv[1:2] or ["s2v_tiny"]:
    config = get_experiment(name)
    config.train.optimizer = "sgd"
    config.train.learning_rate = 0.5  # a large step so a wrong scaling shows
    config.train.d_frame_learning_rate = config.train.d_sequence_learning_rate = 0.5
    config.model.tgan.noise_std = 0.0
    keras.utils.set_random_seed(0)
    initial = train_lib.build_trainable(config).get_weights()
    rng = np.random.default_rng(0)
    if config.model.kind == "tgan":
        from keras_s2v.models.temporal_gan import window_shape

        steps = 2
        batch = (
            {
                "faces": rng.random((8, 112, 112, 3), dtype=np.float32),
                "audio": (0.1 * rng.normal(size=(8, steps, *window_shape(config.model.tgan.audio_input)))).astype(
                    np.float32
                ),
            },
            rng.random((8, steps, 112, 112, 3), dtype=np.float32),
        )
    else:
        batch = (
            {
                "faces": rng.random((8, 112, 112, 3), dtype=np.float32),
                "mfcc": rng.normal(size=(8, 12, 35)).astype(np.float32),
            },
            rng.random((8, 112, 112, 3), dtype=np.float32),
        )
    one = one_step(["/cpu:0"], initial, batch)
    two = one_step(["/cpu:0", "/cpu:1"], initial, batch)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(one, initial))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
    print(f"{name} moved {moved:.6g} diff {diff:.6g}")
sys.exit(0)
