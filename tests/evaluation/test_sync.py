"""The sync expert: audio/video timing, the model, its training data, offset search, and prepare using it."""

import json

import numpy as np
import pytest

from keras_s2v import workdirs
from keras_s2v.configs import experiments
from keras_s2v.data import audio, pipeline, prepare
from keras_s2v.evaluation import sync
from keras_s2v.models.syncnet import SyncNet


def test_sync_window_spans_the_five_frames():
    # Column c of mfcc_sequence is centred on sample -2400 + 160 c.
    start, stop = audio.sync_mfcc_slice(10)
    centres = -2400 + 160 * np.arange(start, stop)
    assert stop - start == audio.SYNC_MFCC_HOPS == 20
    assert centres.min() >= audio.frame_to_sample(8) and centres.max() < audio.frame_to_sample(13)
    # Centred on frame 10's centre within half a hop.
    assert abs(centres.mean() - (audio.frame_to_sample(10) + audio.SAMPLES_PER_FRAME / 2)) <= 80
    # Every frame's window lies inside a segment's stored MFCC (12, 4 T + 31).
    t = 99
    assert audio.sync_mfcc_slice(0)[0] >= 0 and audio.sync_mfcc_slice(t)[1] <= 4 * (t + 1) + 31


def test_syncnet_config_round_trip_and_reload(tmp_path):
    import keras

    model = SyncNet(width=0.125, embedding_dim=16, max_shift=2)
    assert SyncNet.from_config(model.get_config()).get_config() == model.get_config()
    x = {
        "lips": np.random.rand(2, 56, 112, 5).astype("float32"),
        "mfcc": np.random.randn(2, 5, 12, 20).astype("float32"),
    }
    distances = model.predict(x, verbose=0)
    assert distances.shape == (2, 5) and np.all(distances >= 0) and np.all(distances <= 2 + 1e-5)
    model.save(tmp_path / "sync.keras")
    again = keras.saving.load_model(tmp_path / "sync.keras", compile=False)
    np.testing.assert_allclose(again.predict(x, verbose=0), distances, atol=1e-6)


def test_distance_curve_finds_a_planted_offset():
    rng = np.random.default_rng(0)
    audio_emb = rng.normal(size=(60, 8))
    video_emb = np.roll(audio_emb, -4, axis=0) + 0.05 * rng.normal(size=(60, 8))  # video t matches audio t + 4
    result = sync.score_curve(*sync.distance_curve(video_emb, audio_emb))
    assert result.offset == 4 and result.confidence > 0.5
    assert list(result.offsets) == list(range(-15, 16))
    # Short clips search less far, so every offset still averages two thirds of the clip.
    offsets, _ = sync.distance_curve(video_emb[:12], audio_emb[:12])
    assert offsets.max() == 4


def test_delayed_moves_sound_by_whole_frames():
    wave = np.zeros(10 * audio.SAMPLES_PER_FRAME, np.float32)
    wave[640 * 2] = 1.0
    assert np.argmax(audio.delayed(wave, 3)) == 640 * 5
    assert np.argmax(audio.delayed(wave, -1)) == 640 * 1
    assert len(audio.delayed(wave, -4)) == len(wave)


def test_dataset_pairs_each_window_with_its_shifted_audio(synth_shards):
    import tensorflow as tf

    from keras_s2v.data import features

    k = 3
    ((x, y),) = pipeline.syncnet_dataset(
        synth_shards, "train", 4, max_shift=k, samples_per_segment=2, training=False
    ).take(1)
    assert x["lips"].shape == (4, 56, 112, 5) and x["mfcc"].shape == (4, 2 * k + 1, 12, 20)
    assert np.all(y.numpy() == k)
    # The in-sync candidate of the first sample is the contract's MFCC at sync_mfcc_slice of its centre frame.
    example = features.decode_example(next(iter(tf.data.TFRecordDataset(pipeline.shard_files(synth_shards, "train")))))
    n = int(example["num_frames"])
    centre = int(np.linspace(0, n - 2 * (k + 2) - 1, 2).astype(int)[0]) + k + 2
    expected = example["mfcc"].numpy()[:, slice(*audio.sync_mfcc_slice(centre))]
    np.testing.assert_allclose(x["mfcc"][0, k], expected, atol=1e-6)
    np.testing.assert_allclose(
        x["mfcc"][0, k + 1], example["mfcc"].numpy()[:, slice(*audio.sync_mfcc_slice(centre + 1))], atol=1e-6
    )
    # Lips: grey lower half of frames centre-2 .. centre+2, same as the NumPy twin used at scoring time.
    frames = example["frames"].numpy()[centre - 2 : centre + 3]
    np.testing.assert_allclose(x["lips"][0].numpy(), np.moveaxis(sync.lips(frames), 0, -1), atol=2e-3)


@pytest.fixture(scope="module")
def expert_workdir(trained_tiny):
    """A tiny sync expert after a few real training steps (shared with other files: read only)."""
    workdir = trained_tiny("syncnet_tiny")
    assert np.isfinite(json.loads((workdir / "history.json").read_text())[-1]["loss"])
    return workdir


def test_trained_expert_scores_clips(expert_workdir, synth_shards):
    from keras_s2v.evaluation import evaluate_lib

    expert = sync.SyncExpert(expert_workdir)
    assert expert.data_parameters["crop_size"] == 112
    clip = next(evaluate_lib.clips_from_shards(synth_shards, "train"))
    result = expert.score(clip.frames, clip.mfcc)
    assert -15 <= result.offset <= 15 and result.confidence >= 0 and 0 <= result.min_distance <= 2
    accuracy = sync.planted_offset_accuracy(expert, [clip], shifts=(0, 2))
    assert accuracy["clips"] == 1 and len(accuracy["rows"]) == 2 and 0 <= accuracy["accuracy"] <= 1


def test_expert_refuses_a_generator_workdir(tmp_path):
    workdirs.check_workdir(tmp_path, experiments.get_experiment("s2v_tiny"))
    with pytest.raises(ValueError, match="not a sync expert"):
        sync.SyncExpert(tmp_path)


def test_prepare_with_the_expert_records_offsets(expert_workdir, synth_shards, tmp_path):
    from keras_s2v.data.face import FaceAnalyzer

    corpus = synth_shards.parent / "corpus"
    video = min(corpus.rglob("*.mp4"))
    config = prepare.PrepareConfig(
        split="train", min_track_frames=20, sync_model=str(expert_workdir), sync_min_confidence=0.0
    )
    expert = prepare.load_sync_expert(config, sync.SyncExpert)
    segments, entry = prepare.process_clip(str(video), video.name, config, FaceAnalyzer(), sync_expert=expert)
    assert entry["status"] == "ok", entry
    ((_track, scores),) = entry["sync"].items()
    assert set(scores) == {"offset", "confidence", "distance"}
    # The segment's audio is shifted by the offset found (confidence threshold 0: always applied).
    assert all(s.offset_frames == scores["offset"] for s in segments)
    plain, _ = prepare.process_clip(
        str(video), video.name, prepare.PrepareConfig(split="train", min_track_frames=20), FaceAnalyzer()
    )
    shift = scores["offset"] * audio.SAMPLES_PER_FRAME  # segment sample j now holds what was sample j + shift
    a, b = segments[0].pcm, plain[0].pcm
    lo, hi = max(0, -shift), min(len(a), len(b) - shift)
    np.testing.assert_array_equal(a[lo:hi], b[lo + shift : hi + shift])
    json.dumps(entry)  # the manifest entry stays JSON


def test_the_mouth_crop_is_the_same_in_the_graph_and_in_numpy(synth_shards):
    import tensorflow as tf

    from keras_s2v.data.face.align import lip_box

    ((x, _),) = pipeline.syncnet_dataset(
        synth_shards, "train", 2, max_shift=2, samples_per_segment=1, training=False, crop="mouth"
    ).take(1)
    top, left, side = lip_box(112)
    assert x["lips"].shape == (2, side, side, 5) and (top, left) == (45, 28)
    frames = (np.random.default_rng(0).random((5, 112, 112, 3)) * 255).astype(np.uint8)
    graph = pipeline.lips(tf.constant(frames, tf.float32) / 255.0, "mouth").numpy()
    np.testing.assert_allclose(graph, sync.lips(frames, "mouth"), atol=2e-3)
    grey = frames.astype(np.float32) @ np.array([0.2989, 0.587, 0.114], np.float32) / 255.0
    np.testing.assert_allclose(sync.lips(frames, "mouth"), grey[:, top : top + side, left : left + side])
    model = SyncNet(width=0.125, embedding_dim=16, max_shift=2, crop="mouth", dropout=0.3)
    assert model.video_encoder.input.shape[1:] == (side, side, 5)
    assert SyncNet.from_config(model.get_config()).get_config() == model.get_config()


def test_centred_windows_see_motion_and_audio_changes_not_appearance():
    model = SyncNet(width=0.125, embedding_dim=16, max_shift=2, crop="mouth", centered=True)
    rng = np.random.default_rng(0)
    lips = rng.random((2, 56, 56, 5), dtype=np.float32)
    mfcc = rng.normal(size=(2, 12, 20)).astype(np.float32)
    still = rng.random((2, 56, 56, 1), dtype=np.float32)  # the same picture added to all 5 frames
    np.testing.assert_allclose(model.video_encoder(lips + still), model.video_encoder(lips), atol=1e-5)
    np.testing.assert_allclose(
        model.audio_encoder(mfcc + rng.normal(size=(2, 12, 1)).astype(np.float32)), model.audio_encoder(mfcc), atol=1e-5
    )
    assert SyncNet.from_config(model.get_config()).get_config() == model.get_config()
