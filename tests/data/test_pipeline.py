"""tf.data pipelines: windows match the timing module, identity frames far from the target, determinism."""

import numpy as np
import tensorflow as tf

from keras_s2v.data import audio, features, pipeline


def test_identity_frames_are_far_from_the_target():
    key = tf.constant([1, 2], tf.int64)
    picks = pipeline._identity_indices(key, 100, 10, 50, 0.5).numpy()
    assert (np.abs(picks - 10) >= 50).all()
    # A segment too short for the gap falls back to the farthest frames.
    short = pipeline._identity_indices(key, 3, 1, 5, 0.9).numpy()
    assert set(short) <= {0, 2}


def test_blur_kernels_are_normalised_and_blur():
    for seed in range(6):
        kernel = pipeline.blur_kernel(tf.constant([seed, 7], tf.int64), 3.0, 9).numpy()
        assert kernel.shape == (15, 15) and abs(kernel.sum() - 1) < 1e-5 and kernel.min() >= 0
    image = np.zeros((32, 32, 3), np.float32)
    image[:, 16:] = 1.0
    blurred = pipeline.blur(tf.constant(image), pipeline.blur_kernel(tf.constant([0, 0], tf.int64), 3.0, 9)).numpy()
    assert 0.05 < blurred[16, 15, 0] < 0.95 and blurred.shape == image.shape


def test_samples_hold_the_target_frames_own_window(synth_shards):
    example = features.decode_example(next(iter(tf.data.TFRecordDataset(features.list_shards(synth_shards, "validation")))))
    n = int(example["num_frames"])
    dataset = pipeline.speech2vid_dataset(synth_shards, "validation", 64, samples_per_segment=4, training=False)
    inputs, target = next(iter(dataset))
    targets = np.linspace(0, n - 1, 4).astype(int)
    for i, t in enumerate(targets):
        expected = example["mfcc"].numpy()[:, slice(*audio.mfcc_window_slice(int(t)))]
        np.testing.assert_array_equal(inputs["mfcc"][i].numpy(), expected)
        np.testing.assert_allclose(target[i].numpy(), example["frames"][t].numpy() / 255.0, atol=1e-6)


def test_training_batches_are_deterministic_under_a_seed(synth_shards):
    def first(seed):
        inputs, target = next(iter(pipeline.speech2vid_dataset(synth_shards, "train", 4, num_identity_images=5,
                                                                shuffle_buffer=16, seed=seed)))  # fmt: skip
        return inputs["faces"].numpy(), inputs["mfcc"].numpy(), target.numpy()

    a, b, c = first(1), first(1), first(2)
    assert a[0].shape == (4, 112, 112, 15)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])
