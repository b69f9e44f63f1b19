"""Audio windows from chunks of any size, at any frame rate, equal the offline windows."""

import itertools

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


def test_windows_go_on_in_silence_when_asked():
    waveform = np.ones(3200, np.float32)
    windows = list(itertools.islice(frame_loop.audio_windows([waveform], then_silence=True), 40))
    padded = np.concatenate([waveform, np.zeros(40 * 640, np.float32)])
    for t, window in enumerate(windows):
        np.testing.assert_array_equal(window, audio.pcm_window(padded, t))
    assert not windows[-1].any()
