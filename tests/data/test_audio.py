"""The timing module: frame <-> window alignment at the edges, and MFCC agreement."""

import numpy as np
import pytest

from keras_s2v.data import audio


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * audio.SAMPLE_RATE)) / audio.SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    tone = np.sin(2 * np.pi * (200 + 100 * np.sin(2 * np.pi * 0.5 * t)) * t)
    return (0.3 * envelope * tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_constants_agree():
    assert audio.SAMPLES_PER_FRAME * audio.FPS == audio.SAMPLE_RATE
    assert audio.HOPS_PER_FRAME * audio.HOP_LENGTH == audio.SAMPLES_PER_FRAME
    assert audio.MFCC_WINDOW_SAMPLES == audio.WIN_LENGTH + (audio.MFCC_WINDOW_HOPS - 1) * audio.HOP_LENGTH
    assert audio.FFT_LENGTH & (audio.FFT_LENGTH - 1) == 0  # power of two, for TFLite's RFFT


@pytest.mark.parametrize("t", [0, 1, 7, 99])
def test_windows_are_centred_on_their_frame(t):
    centre = audio.frame_to_sample(t) + audio.SAMPLES_PER_FRAME // 2
    for start, stop in (audio.mfcc_window_range(t), audio.wave_window_range(t)):
        assert (start + stop) / 2 == centre
    start, stop = audio.mfcc_window_range(t)
    assert (stop - start) / audio.SAMPLE_RATE == pytest.approx(0.365)
    assert audio.mfcc_window_slice(t) == (4 * t, 4 * t + 35)


def test_frames_ahead_is_the_frame_holding_the_windows_last_sample():
    # Frame t is ready with the audio through frame t + ahead, and not one sample before: its window's last sample.
    for samples, ahead in ((audio.MFCC_WINDOW_SAMPLES, 5), (audio.WAVE_WINDOW_SAMPLES, 2), (640, 0), (1920, 1)):
        assert audio.frames_ahead(audio.FPS, samples) == ahead
        for t in (0, 1, 40):
            stop = audio.window_range(t, audio.FPS, samples)[1]
            assert audio.frame_to_sample(t + ahead) < stop <= audio.frame_to_sample(t + ahead + 1)
    assert audio.frames_ahead(audio.FPS, 3200) == 2  # [640 t - 1280, 640 t + 1920): ends exactly with frame t + 2
    assert audio.frames_ahead(50) == 9  # the MFCC window at 50 fps ends at 320 t + 3080, in frame t + 9 of 320 samples


def test_num_frames_counts_partial_frames():
    assert audio.num_frames(0) == 0
    assert audio.num_frames(1) == 1
    assert audio.num_frames(640) == 1
    assert audio.num_frames(641) == 2
    assert audio.num_frames(audio.SAMPLE_RATE * 3) == 75


def test_first_and_last_frames_read_silence_outside_the_clip():
    wave = _speechlike(1.0)
    frames = audio.num_frames(len(wave))
    first = audio.pcm_window(wave, 0)
    assert first.shape == (audio.MFCC_WINDOW_SAMPLES,)
    assert np.all(first[: -audio.MFCC_WINDOW_OFFSET] == 0)  # 2600 samples before the clip
    np.testing.assert_array_equal(
        first[-audio.MFCC_WINDOW_OFFSET :], wave[: audio.MFCC_WINDOW_SAMPLES + audio.MFCC_WINDOW_OFFSET]
    )
    last = audio.pcm_window(wave, frames - 1)
    start, stop = audio.mfcc_window_range(frames - 1)
    assert np.all(last[len(wave) - start :] == 0)
    np.testing.assert_array_equal(last[: len(wave) - start], wave[start:])


def test_audio_shorter_than_one_window():
    wave = _speechlike(0.1)  # 1600 samples: shorter than the 5840-sample window
    frames = audio.num_frames(len(wave))
    assert frames == 3
    windows = audio.mfcc_windows(wave, frames)
    assert windows.shape == (3, 12, 35) and np.isfinite(windows).all()
    for t in range(frames):
        np.testing.assert_allclose(windows[t], audio.mfcc_from_pcm_window(audio.pcm_window(wave, t)), atol=1e-3)
    assert audio.log_mel_frames(wave, frames).shape == (3, 4, 128)
    assert audio.pcm_window(wave, 2, audio.FPS, audio.WAVE_WINDOW_SAMPLES).shape == (audio.WAVE_WINDOW_SAMPLES,)


def test_whole_clip_mfcc_equals_per_window_mfcc():
    wave = _speechlike(2.0)
    frames = audio.num_frames(len(wave))
    windows = audio.mfcc_windows(wave, frames)
    assert windows.shape == (frames, audio.MFCC_COEFFS, audio.MFCC_WINDOW_HOPS)
    for t in (0, 1, frames // 2, frames - 1):
        np.testing.assert_allclose(windows[t], audio.mfcc_from_pcm_window(audio.pcm_window(wave, t)), atol=1e-4)


def test_mfcc_matches_librosa_reference():
    """Same mel filterbank, log and DCT as librosa's MFCC on the same power spectrum."""
    import librosa

    wave = _speechlike(1.0)
    window = audio.pcm_window(wave, 10)
    ours = audio.mfcc_from_pcm_window(window)
    # Framing as ours (400-sample Hamming frames zero-padded to 512), then librosa's mel + DCT.
    frames = librosa.util.frame(window, frame_length=audio.WIN_LENGTH, hop_length=audio.HOP_LENGTH)
    spec = np.abs(np.fft.rfft(frames.T * audio.hamming_window(), n=audio.FFT_LENGTH)) ** 2
    mel = librosa.feature.melspectrogram(
        S=spec.T, sr=audio.SAMPLE_RATE, n_mels=40, fmin=300, fmax=3700, htk=True, norm=None
    )
    reference = librosa.feature.mfcc(S=np.log(mel + audio.LOG_FLOOR), n_mfcc=13, dct_type=2, norm="ortho")[1:13]
    assert ours.shape == reference.shape == (12, 35)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-3)


def test_in_graph_mfcc_agrees_and_converts_to_tflite_builtins(tmp_path):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    wave = _speechlike(1.5, seed=3)
    windows = np.stack([audio.pcm_window(wave, t) for t in (0, 12, 36)])
    offline = np.stack([audio.mfcc_from_pcm_window(w) for w in windows])
    value_range = offline.max() - offline.min()

    in_graph = audio.mfcc_tf(tf.constant(windows)).numpy()
    assert np.abs(in_graph - offline).max() <= 1e-3 * value_range

    fn = tf.function(audio.mfcc_tf, input_signature=[tf.TensorSpec([1, audio.MFCC_WINDOW_SAMPLES], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    for window, expected in zip(windows, offline):
        interpreter.set_tensor(inp["index"], window[None])
        interpreter.invoke()
        assert np.abs(interpreter.get_tensor(out["index"])[0] - expected).max() <= 1e-3 * value_range


def test_int16_round_trip():
    wave = _speechlike(0.2)
    np.testing.assert_allclose(audio.to_float(audio.to_int16(wave)), wave, atol=1 / 16000)


def test_windows_at_another_frame_rate_are_centred_on_that_frame():
    for fps in (25, 30, 24):
        for t in (0, 7):
            start, stop = audio.mfcc_window_range(t, fps)
            assert stop - start == audio.MFCC_WINDOW_SAMPLES
            assert abs((start + stop) / 2 - (t + 0.5) * audio.SAMPLE_RATE / fps) <= 1
    assert audio.mfcc_window_range(3, 25) == audio.mfcc_window_range(3)


def test_glance_windows_give_the_training_log_mel_in_numpy_and_in_the_graph():
    """A 16-frame window's raw samples -> exactly the clip's stored log-mel rows, at the edges too."""
    wave = _speechlike(1.5)
    frames = audio.num_frames(len(wave))
    stored = audio.log_mel_frames(wave, frames).reshape(-1, audio.LOG_MEL_BANDS)
    assert (
        audio.log_mel_window_samples() == 10480 == audio.log_mel_window_range(3)[1] - audio.log_mel_window_range(3)[0]
    )
    windows = []
    for first in (0, 8, frames - audio.GLANCE_FRAMES, frames - 4):  # the last runs past the end: zeros, as stored
        window = audio.padded_slice(wave, *audio.log_mel_window_range(first))
        rows = stored[4 * first : 4 * (first + audio.GLANCE_FRAMES)]
        np.testing.assert_allclose(audio.log_mel_from_pcm_window(window)[: len(rows)], rows, atol=1e-4)
        windows.append(window)
    in_graph = np.asarray(audio.log_mel_tf(np.stack(windows)))
    numpy = np.stack([audio.log_mel_from_pcm_window(w) for w in windows])
    assert in_graph.shape == (4, 64, 128)
    np.testing.assert_allclose(in_graph, numpy, atol=1e-3)


def test_float16_tflite_keeps_the_in_graph_log_mel():
    """A float16 export rounds constants to 11 bits; the split DFT keeps quiet bands (rounded whole: 0.2 off)."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    parts = audio.float16_exact_parts(audio.windowed_dft_matrices()[0])
    assert np.array_equal(parts, parts.astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(parts.sum(axis=0), audio.windowed_dft_matrices()[0], atol=1e-7)

    frames = 4
    wave = _speechlike(1.0, seed=5)
    window = audio.padded_slice(wave, *audio.log_mel_window_range(6, frames))
    fn = tf.function(
        lambda pcm: audio.log_mel_tf(pcm, frames),
        input_signature=[tf.TensorSpec([1, audio.log_mel_window_samples(frames)], tf.float32)],
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    assert any(d["dtype"] == np.float16 for d in interpreter.get_tensor_details())  # the constants really are float16
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], window[None])
    interpreter.invoke()
    lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    # 0.013 is LOG_FLOOR rounded to float16, only on bands of digital silence
    np.testing.assert_allclose(lite, audio.log_mel_from_pcm_window(window, frames), atol=0.02)
