"""tf.data pipelines: windows match the timing module, identity frames far from the target, determinism."""

import numpy as np
import pytest
import tensorflow as tf

from keras_s2v.data import audio, features, pipeline
from keras_s2v.data.face import align


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
    example = features.decode_example(
        next(iter(tf.data.TFRecordDataset(features.list_shards(synth_shards, "validation"))))
    )
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
        inputs, target = next(
            iter(
                pipeline.speech2vid_dataset(
                    synth_shards, "train", 4, num_identity_images=5, shuffle_buffer=16, seed=seed
                )
            )
        )
        return inputs["faces"].numpy(), inputs["mfcc"].numpy(), target.numpy()

    a, b, c = first(1), first(1), first(2)
    assert a[0].shape == (4, 112, 112, 15)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])


def test_lip_box_is_the_mouth_and_crops_match_it():
    for size in (112, 128, 224):
        top, left, side = align.lip_box(size)
        mouth = align.canonical_landmarks(size)[align.MOUTH]
        assert side == size // 2 and 0 <= top and top + side <= size and 0 <= left and left + side <= size
        assert (mouth[:, 0] > left + 0.15 * side).all() and (mouth[:, 0] < left + 0.85 * side).all()
        assert (mouth[:, 1] > top + 0.15 * side).all() and (mouth[:, 1] < top + 0.85 * side).all()
    faces = np.random.default_rng(0).random((2, 3, 112, 112, 3)).astype(np.float32)
    top, left, side = align.lip_box(112)
    crops = align.lip_crops(faces).numpy()
    assert crops.shape == (2, 3, 64, 64, 3)
    expected = tf.image.resize(faces[1, 2, top : top + side, left : left + side], (64, 64)).numpy()
    np.testing.assert_allclose(crops[1, 2], expected, atol=1e-6)


def test_glance_windows_hold_lip_clips_and_their_own_log_mel(synth_shards):
    example = features.decode_example(
        next(iter(tf.data.TFRecordDataset(features.list_shards(synth_shards, "validation"))))
    )
    n = int(example["num_frames"])
    inputs, clips = next(
        iter(pipeline.glance_dataset(synth_shards, "validation", 8, frames=8, samples_per_segment=2, training=False))
    )
    assert inputs["lips"].shape[1:] == (64, 64, 3) and inputs["log_mel"].shape[1:] == (32, 128)
    assert clips.shape[1:] == (8, 64, 64, 3)
    first = np.linspace(0, n - 8, 2).astype(int)[0]
    np.testing.assert_array_equal(inputs["log_mel"][0], example["log_mel"].numpy()[first : first + 8].reshape(32, 128))
    frames = example["frames"][first : first + 8].numpy() / 255.0
    np.testing.assert_allclose(clips[0], align.lip_crops(frames).numpy(), atol=1e-5)


def test_parallel_segments_are_drawn_at_once_in_a_fixed_order():
    segments = tf.data.Dataset.range(6)

    def draws(segment):
        return tf.data.Dataset.from_tensor_slices([10 * segment, 10 * segment + 1])

    one_by_one = [0, 1, 10, 11, 20, 21, 30, 31, 40, 41, 50, 51]
    assert list(pipeline._samples(segments, draws).as_numpy_iterator()) == one_by_one
    taken_in_turn = [0, 10, 20, 30, 1, 11, 21, 31, 40, 50, 41, 51]  # 4 segments at once
    for _ in range(3):
        assert list(pipeline._samples(segments, draws, 4).as_numpy_iterator()) == taken_in_turn


def test_parallel_segments_reach_every_kinds_training_batches(synth_shards):
    """data.parallel_segments through each task: the same batches every time, other ones than one by one."""
    from keras_s2v.configs.experiments import apply_overrides, get_experiment
    from keras_s2v.training import tasks

    def first_batches(name, *overrides):
        config = apply_overrides(get_experiment(name), ["data.augment=false", *overrides])
        dataset = tasks.get_task(config.model.kind).datasets(config, synth_shards, 4)[0]
        return [np.asarray(x) for batch in dataset.take(3) for x in tf.nest.flatten(batch)]

    for name in ("s2v_tiny", "deblur_tiny", "syncnet_tiny", "tgan_tiny", "glance_tiny"):
        parallel = first_batches(name, "data.parallel_segments=2")
        assert all(np.array_equal(a, b) for a, b in zip(parallel, first_batches(name, "data.parallel_segments=2")))
        assert not all(np.array_equal(a, b) for a, b in zip(parallel, first_batches(name))), name


@pytest.mark.parametrize("where", ["memory", "file"])
def test_cached_segments_give_the_same_training_batches(synth_shards, tmp_path, where):
    """Three passes over the train split (one shard: the same segment order each pass), and a second run on the
    file cache the first one finished: the batches the shards give."""
    cache = "memory" if where == "memory" else str(tmp_path / "segments")

    def batches(cache=""):
        dataset = pipeline.deblur_dataset(
            synth_shards, "train", 4, samples_per_segment=4, shuffle_buffer=4, seed=3, cache=cache
        )
        return [(blurred.numpy(), sharp.numpy()) for blurred, sharp in dataset.take(6)]

    assert len(features.list_shards(synth_shards, "train")) == 1
    plain = batches()
    runs = [batches(cache)] + ([batches(cache)] if where == "file" else [])
    for run in runs:
        for (blurred, sharp), (plain_blurred, plain_sharp) in zip(run, plain, strict=True):
            np.testing.assert_array_equal(blurred, plain_blurred)
            np.testing.assert_array_equal(sharp, plain_sharp)
    if where == "file":
        assert (tmp_path / "segments.index").exists()


def test_file_shards_read_their_own_files_with_their_own_keys(synth_shards_two_files):
    """data.shard_by=file: shard (0, 2) and (1, 2) read disjoint files that make up the split, and draw other keys."""
    files = pipeline.shard_files(synth_shards_two_files, "train")
    own = [pipeline.shard_files(synth_shards_two_files, "train", (i, 2)) for i in range(2)]
    assert not set(own[0]) & set(own[1]) and sorted(own[0] + own[1]) == files

    def read(shard):
        segments = pipeline._segments(synth_shards_two_files, "train", True, seed=5, shard=shard)
        pairs = list(segments.take(4))  # two passes over a worker's one segment (the training input repeats)
        return {e["clip_id"].numpy() for e, _ in pairs}, np.stack([k.numpy() for _, k in pairs])

    (clips0, keys0), (clips1, keys1), (every, keys) = read((0, 2)), read((1, 2)), read(None)
    assert len(clips0) == len(clips1) == 1 and clips0 | clips1 == every and len(every) == 2
    assert not np.array_equal(keys0, keys1) and not np.array_equal(keys0, keys)
    np.testing.assert_array_equal(read((0, 1))[1], keys)  # one pipeline of one: the unsharded input


def test_file_shards_refuse_fewer_files_than_workers(synth_shards):
    with pytest.raises(ValueError) as error:
        pipeline.shard_files(synth_shards, "train", (0, 2))
    for words in ("1 train shard file(s) for 2 workers", "data.shard_by=data", "--shard_size_mb"):
        assert words in str(error.value)


def test_file_shards_reach_every_kinds_training_input(synth_shards_two_files):
    """``Task.datasets(..., shard)`` of each kind: the two workers' first training batches differ (a task that dropped
    the shard would give both the whole split's, with one seed)."""
    from keras_s2v.configs.experiments import apply_overrides, get_experiment
    from keras_s2v.training import tasks

    for name in ("s2v_tiny", "deblur_tiny", "syncnet_tiny", "tgan_tiny", "glance_tiny"):
        config = apply_overrides(get_experiment(name), ["data.shuffle_buffer=4"])
        task = tasks.get_task(config.model.kind)
        first = []
        for shard in ((0, 2), (1, 2)):
            train = task.datasets(config, synth_shards_two_files, 2, shard)[0]
            first.append([np.asarray(x) for x in tf.nest.flatten(next(iter(train)))])
        assert [a.shape for a in first[0]] == [b.shape for b in first[1]], name
        assert not all(np.array_equal(a, b) for a, b in zip(*first)), name
