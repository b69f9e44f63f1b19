"""Audio windows from chunks of any size, at any frame rate, equal the offline windows."""

import itertools
import os

import numpy as np
import pytest

from keras_s2v import frame_loop, lite_client
from keras_s2v.data import audio


@pytest.mark.parametrize(("chunk", "fps"), [(1, 25), (640, 25), (1000, 25), (100000, 25), (777, 30), (5000, 29.97)])
def test_windows_equal_pcm_window_whatever_the_chunk_size(chunk, fps):
    waveform = np.random.default_rng(1).uniform(-1, 1, 16000 + 123).astype(np.float32)
    windows = list(frame_loop.audio_windows(lite_client.audio_chunks(waveform, chunk), fps))
    assert len(windows) == audio.num_frames(len(waveform), fps)
    for t, window in enumerate(windows):
        np.testing.assert_array_equal(window, audio.pcm_window(waveform, t, fps))


def _pipe():
    read, write = os.pipe()
    return os.fdopen(read, "rb"), write


def test_read_pcm_passes_on_what_has_arrived_and_refuses_half_a_sample():
    pcm, write = _pipe()
    with pcm:
        chunks = frame_loop.read_pcm(pcm, "the pipe")
        os.write(write, np.array([16384, -32768], "<i2").tobytes()[:3])  # a sample and a half
        np.testing.assert_array_equal(next(chunks), [0.5])  # no waiting for more
        os.write(write, b"\x80")
        np.testing.assert_array_equal(next(chunks), [-1.0])
        os.write(write, b"\x00")
        os.close(write)
        with pytest.raises(ValueError, match=r"the pipe: ended in the middle of a sample \(5 bytes\)"):
            next(chunks)


def test_window_batches_hold_only_the_windows_ready_and_no_more_than_the_batch_size():
    chunks = [np.zeros(n, np.float32) for n in (3239, 1, 640 * 3, 640 * 10, 0)]
    sizes = [len(batch) for batch in frame_loop.window_batches(chunks, batch_size=4)]
    # 3240 samples make frame 0 ready, each 640 more the next; the end pads the last 5 frames' windows with silence.
    assert sizes == [1, 3, 4, 4, 2, 4, 1]
    assert sum(sizes) == audio.num_frames(sum(map(len, chunks)))


def test_windows_go_on_in_silence_when_asked():
    waveform = np.ones(3200, np.float32)
    windows = list(itertools.islice(frame_loop.audio_windows([waveform], then_silence=True), 40))
    padded = np.concatenate([waveform, np.zeros(40 * 640, np.float32)])
    for t, window in enumerate(windows):
        np.testing.assert_array_equal(window, audio.pcm_window(padded, t))
    assert not windows[-1].any()


# --- WindowedGenerator (lips at a glance) -------------------------------------------------------

SCALE = 1e-6  # the test waveform: sample s holds s * SCALE, so a window's pcm says where it starts


def _ramp(frames):
    return (np.arange(frames * audio.SAMPLES_PER_FRAME) * SCALE).astype(np.float32)


def _lip_value(k, f):
    return (k * 100 + f) / 10000.0


class _WindowCounter:
    """window_fn: window k's frame f is _lip_value(k, f) everywhere; checks each window's pcm and counts calls."""

    def __init__(self, waveform, window_frames=16, lip_size=8):
        self.waveform, self.window_frames, self.lip_size = waveform, window_frames, lip_size
        self.hop = window_frames // 2
        self.seen, self.calls = [], []

    def __call__(self, identity, pcm):
        assert identity["identity"].shape == (1, 4)  # batch 1: the backend's runtime repeats it
        out = []
        for window in pcm:
            # Window 0 starts 120 samples before the audio (zeros); sample 640 hop k + 1 holds (640 hop k + 1) SCALE.
            k = int(np.rint((window[121] / SCALE - 1) / (audio.SAMPLES_PER_FRAME * self.hop)))
            expected = audio.padded_slice(self.waveform, *audio.log_mel_window_range(self.hop * k, self.window_frames))
            np.testing.assert_array_equal(window, expected)
            self.seen.append(k)
            values = np.array([_lip_value(k, f) for f in range(self.window_frames)], np.float32)
            out.append(
                np.broadcast_to(values[:, None, None, None], (self.window_frames, self.lip_size, self.lip_size, 3))
            )
        self.calls.append(len(pcm))
        return np.stack(out)


def _windowed(waveform, window_frames=16):
    counter = _WindowCounter(waveform, window_frames)
    backend = frame_loop.WindowedGenerator(
        lambda faces: {"identity": np.ones((1, 4), np.float32)},
        counter,
        window_frames,
        "test",
        lip_size=counter.lip_size,
    )
    return backend, counter


def _face():
    y, x = np.mgrid[0:112, 0:112]
    return np.stack([x * 2, y * 2, (x + y)], -1).clip(0, 255).astype(np.uint8)[None]


@pytest.mark.parametrize(("window_frames", "samples"), [(16, 20080), (8, 9840)])
def test_the_row_holds_both_windows_of_every_frame(window_frames, samples):
    assert frame_loop.windowed_row_samples(window_frames) == samples
    hop = window_frames // 2
    for t in range(3 * window_frames):
        start, stop = audio.window_range(t, audio.FPS, samples)
        assert (start + stop) / 2 == 640 * t + 320  # centred on the frame
        k = t // hop
        needed = [audio.log_mel_window_range(hop * w, window_frames) for w in (k - 1, k) if w >= 0]
        assert all(start <= a and b <= stop for a, b in needed), t
    # The bound is tight: the last frame before a window starts needs the row's first sample, a window's first its last.
    assert audio.log_mel_window_range(0, window_frames)[0] == audio.window_range(2 * hop - 1, audio.FPS, samples)[0]
    assert audio.log_mel_window_range(hop, window_frames)[1] == audio.window_range(hop, audio.FPS, samples)[1]


def test_windows_are_computed_once_and_cross_faded():
    total = 40
    waveform = _ramp(total)
    backend, counter = _windowed(waveform)
    identity = backend.identity_features(_face())
    rows = frame_loop.pcm_windows(waveform, 0, total, samples=backend.window_samples)
    lips = np.concatenate([backend.generate_lips(identity, rows[i : i + 7]) for i in range(0, total, 7)])
    assert sorted(counter.seen) == list(range(total // 8)) and len(set(counter.seen)) == len(counter.seen)
    assert counter.calls == [1, 1, 1, 1, 1]  # frames 0, 8, 16, 24, 32 each start a window
    assert sorted(backend._windows) == [4]  # only what the next frame (40: windows 4 and 5) needs is kept
    for t in range(total):
        k, j = divmod(t, 8)
        if k == 0:
            expected = _lip_value(0, j)  # window 0 alone before the first overlap
        else:
            weight = (j + 0.5) / 8
            expected = weight * _lip_value(k, j) + (1 - weight) * _lip_value(k - 1, j + 8)
        np.testing.assert_allclose(lips[t], expected, atol=1e-7, err_msg=str(t))


def test_frames_paste_the_lips_and_do_not_depend_on_the_batch_size():
    total = 40
    waveform = _ramp(total)
    runs = {}
    for batch_size in (1, 7, 25):
        backend, counter = _windowed(waveform)
        runs[batch_size] = np.stack(list(frame_loop.talking_frames(backend, _face(), waveform, batch_size)))
        assert sorted(counter.seen) == list(range(5)), batch_size
        if batch_size == 25:
            assert counter.calls == [4, 1]  # the new windows of one call in one window_fn batch
    assert runs[1].shape == (total, 112, 112, 3)
    np.testing.assert_array_equal(runs[1], runs[7])
    np.testing.assert_array_equal(runs[1], runs[25])
    # Where one window covers, the frame is that window's lips pasted into the face.
    from keras_s2v import paste

    face = _face()[0].astype(np.float32) / 255.0
    for t in range(8):
        lips = np.full((8, 8, 3), _lip_value(0, t), np.float32)
        np.testing.assert_array_equal(runs[7][t], frame_loop.to_uint8(paste.lips_into_face(face, lips)))
    # A second sequence starts again from window 0.
    backend, counter = _windowed(waveform)
    first = np.stack(list(frame_loop.talking_frames(backend, _face(), waveform, 25)))
    again = np.stack(list(frame_loop.talking_frames(backend, _face(), waveform, 25)))
    np.testing.assert_array_equal(first, again)


def test_any_length_of_audio_and_the_streaming_windower():
    waveform = _ramp(3)[:1500]  # shorter than one window: zero-padded past the end
    backend, counter = _windowed(waveform, window_frames=8)
    frames = list(frame_loop.talking_frames(backend, _face(), waveform, 25))
    assert len(frames) == audio.num_frames(len(waveform)) == 3 and counter.seen == [0]
    # Chunked audio through PcmWindower gives the same rows as the offline windows.
    waveform = _ramp(21)
    backend, _ = _windowed(waveform, window_frames=8)
    identity = backend.identity_features(_face())
    streamed = np.stack(
        [
            backend.generate_lips(identity, row[None])[0]
            for row in frame_loop.audio_windows(
                lite_client.audio_chunks(waveform, 1000), samples=backend.window_samples
            )
        ]
    )
    backend, _ = _windowed(waveform, window_frames=8)
    identity = backend.identity_features(_face())
    offline = backend.generate_lips(identity, frame_loop.pcm_windows(waveform, 0, 21, samples=backend.window_samples))
    np.testing.assert_array_equal(streamed, offline)


# --- Masked-target faces (the frame being made first) ------------------------------------------


def _backend(masked: bool, count: int = 1):
    import types

    return types.SimpleNamespace(masked_target=masked, num_identity_images=count, description="the model")


def _faces(rows: int, channels: int, value: int = 0) -> np.ndarray:
    return np.full((rows, 112, 112, channels), value, np.uint8)


def test_identity_faces_put_the_target_first_for_a_masked_backend_only():
    faces = np.concatenate([_faces(1, 3, 10), _faces(1, 3, 20)], axis=-1)  # two reference faces
    np.testing.assert_array_equal(frame_loop.identity_faces(_backend(False, 2), faces), faces)
    photo = frame_loop.identity_faces(_backend(True, 2), faces)  # a photo is its own target
    assert photo.shape == (1, 112, 112, 9)
    assert [int(photo[0, 0, 0, c]) for c in (0, 3, 6)] == [10, 10, 20]
    targets = np.stack([_faces(1, 3, v)[0] for v in (1, 2, 3)])  # a re-dubbed video's frames
    video = frame_loop.identity_faces(_backend(True, 2), faces, targets)
    assert video.shape == (3, 112, 112, 9) and video.dtype == np.uint8
    assert [int(v) for v in video[:, 0, 0, 0]] == [1, 2, 3]
    np.testing.assert_array_equal(video[..., 3:], np.repeat(faces, 3, axis=0))


def test_identity_inputs_split_the_target_off_and_name_what_the_model_takes():
    plain = frame_loop.identity_inputs(_backend(False), _faces(2, 3, 7))
    assert list(plain) == ["faces"] and plain["faces"].shape == (2, 112, 112, 3)
    stacked = np.concatenate([_faces(3, 3, 1), _faces(3, 3, 2)], axis=-1)
    masked = frame_loop.identity_inputs(_backend(True), stacked)
    assert sorted(masked) == ["faces", "target"]
    assert int(masked["target"].max()) == 1 and int(masked["faces"].min()) == 2 and masked["faces"].shape[0] == 3
    with pytest.raises(
        ValueError,
        match=r"the model takes the target frame and 1 reference face\(s\).*"
        r"\(N, S, S, 6\), got \(1, 112, 112, 3\)",
    ):
        frame_loop.identity_inputs(_backend(True), _faces(1, 3))
    with pytest.raises(ValueError, match=r"takes 5 face\(s\): faces of shape \(N, S, S, 15\)"):
        frame_loop.identity_inputs(_backend(False, 5), _faces(1, 3))


def test_identity_rows_repeat_one_row_or_keep_one_per_window():
    one = {"identity": np.arange(4, dtype=np.float32)[None], "skip_6": np.ones((1, 6, 6, 2), np.float32)}
    rows = frame_loop.identity_rows(one, 3)
    assert {k: v.shape[0] for k, v in rows.items()} == {"identity": 3, "skip_6": 3}
    np.testing.assert_array_equal(rows["identity"][2], one["identity"][0])
    per_window = {"identity": np.arange(12, dtype=np.float32).reshape(3, 4)}
    np.testing.assert_array_equal(frame_loop.identity_rows(per_window, 3)["identity"], per_window["identity"])
    with pytest.raises(ValueError, match=r"identity outputs with \[3\] rows for 5 audio windows: give 1 or 5"):
        frame_loop.identity_rows(per_window, 5)
    with pytest.raises(ValueError, match=r"with \[1, 3\] rows for 3 audio windows"):
        frame_loop.identity_rows({**per_window, "skip_6": one["skip_6"]}, 3)


def test_check_face_count_says_how_many_crops_the_model_needs():
    frame_loop.check_face_count(_backend(True, 1), 1)
    with pytest.raises(
        ValueError, match=r"the model needs 5 aligned face crop\(s\) \(--face IMAGE, repeated\), got 1$"
    ):
        frame_loop.check_face_count(_backend(False, 5), 1)
    with pytest.raises(
        ValueError, match=r"needs 1 aligned face crop\(s\).*got 2; the first is also the frame being made"
    ):
        frame_loop.check_face_count(_backend(True, 1), 2)
