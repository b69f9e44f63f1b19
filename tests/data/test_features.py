"""The TFRecord contract: encode -> serialize -> decode gives back the same arrays."""

import numpy as np
import pytest

from keras_s2v.data import audio, features


def make_segment(frames: int = 6, size: int = 32, seed: int = 0, split: str = "train") -> features.Segment:
    rng = np.random.default_rng(seed)
    start, stop = audio.segment_pcm_range(0, frames)
    # Smooth images survive JPEG nearly unchanged; noise would not.
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.stack(
        [np.stack([(xx * 4 + t) % 256, (yy * 4) % 256, np.full_like(xx, 40 * t % 256)], -1) for t in range(frames)]
    ).astype(np.uint8)
    return features.Segment(
        clip_id="spk1/clip-0001",
        source="spk1/clip.mp4",
        speaker="spk1",
        split=split,
        track_id=2,
        segment=1,
        frame_index=np.arange(10, 10 + frames, dtype=np.int64),
        frames=images,
        landmarks=rng.uniform(0, size, (frames, 68, 2)).astype(np.float32),
        source_landmarks=rng.uniform(0, 500, (frames, 68, 2)).astype(np.float32),
        transform=rng.normal(size=(frames, 2, 3)).astype(np.float32),
        pcm=rng.integers(-3000, 3000, stop - start).astype(np.int16),
        mfcc=rng.normal(size=(12, 4 * (frames - 1) + 35)).astype(np.float32),
        log_mel=rng.normal(size=(frames, 4, 128)).astype(np.float32),
        offset_frames=-1,
    )


def test_round_trip():
    import tensorflow as tf

    segment = make_segment()
    decoded = features.decode_example(tf.constant(features.encode_example(segment)))
    assert decoded["clip_id"].numpy().decode() == segment.clip_id
    assert decoded["speaker"].numpy().decode() == "spk1"
    assert decoded["split"].numpy().decode() == "train"
    assert int(decoded["track_id"]) == 2 and int(decoded["segment"]) == 1 and int(decoded["num_frames"]) == 6
    assert int(decoded["offset_frames"]) == -1
    np.testing.assert_array_equal(decoded["frame_index"], segment.frame_index)
    assert decoded["frames"].shape == segment.frames.shape and decoded["frames"].dtype == tf.uint8
    assert np.abs(decoded["frames"].numpy().astype(int) - segment.frames).mean() < 2.0  # JPEG q95
    for key in ("landmarks", "source_landmarks", "transform", "mfcc", "log_mel"):
        np.testing.assert_array_equal(decoded[key].numpy(), getattr(segment, key))
    np.testing.assert_allclose(decoded["pcm"].numpy(), segment.pcm / 32768.0)


def test_decode_inside_tf_data(tmp_path):
    import tensorflow as tf

    path = tmp_path / features.shard_name("train", 0, 1)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for seed in range(3):
            writer.write(features.encode_example(make_segment(frames=4 + seed, seed=seed)))
    assert features.list_shards(tmp_path, "train") == [str(path)]
    dataset = tf.data.TFRecordDataset(features.list_shards(tmp_path, "train")).map(features.decode_example)
    lengths = [int(x["num_frames"]) for x in dataset]
    assert lengths == [4, 5, 6]


def test_shard_names_follow_the_convention():
    assert features.shard_name("validation", 3, 12) == "validation-00003-of-00012.tfrecord"


def test_inconsistent_segment_is_refused():
    segment = make_segment()
    segment.mfcc = segment.mfcc[:, :-1]
    with pytest.raises(ValueError, match="mfcc shape"):
        features.encode_example(segment)
    segment = make_segment(split="dev")
    with pytest.raises(ValueError, match="unknown split"):
        segment.validate()
