"""Audio <-> video timing and audio features: the only module that defines them.

Every other module asks this one which audio samples belong to video frame
``t``; no sample rate, frame rate or hop length is written anywhere else.

Timing. Video runs at ``FPS`` = 25 frames/s and audio at ``SAMPLE_RATE`` =
16 kHz mono, so frame ``t`` covers samples ``[640 t, 640 (t + 1))`` and is
centred on sample ``640 t + 320``. Each model's audio window is centred on
that sample; samples before 0 or past the end of the clip are silence (zeros).

Features (all computed from the same 10 ms hop, 25 ms window, 512-point FFT):

* Speech2Vid MFCC window: 25 ms Hamming window, 10 ms hop, 40 mel filters
  over 300-3700 Hz, 13 cepstra of which 2..13 are kept: ``(12, 35)`` per
  frame, i.e. 0.35 s centred on the frame. It reads raw samples
  ``[640 t - 2600, 640 t + 3240)`` (``MFCC_WINDOW_SAMPLES`` = 5840).
* Log-mel spectrogram (128 bands, 0-8 kHz) for the lip-at-a-glance model:
  4 spectral frames per video frame, so 16 video frames <-> 64 x 128.
* Raw waveform windows of 0.16 s centred on the frame for the temporal GAN.

The MFCC has two implementations with one set of constants: NumPy for data
preparation and ``mfcc_tf`` for graphs that must convert to TFLite with
builtin ops only (framing, RFFT, mel and DCT as constant matrices; the FFT
length must be a power of two; ``tf.signal.mfccs_from_log_mel_spectrograms``
does not convert).
"""

from __future__ import annotations

import functools
import math

import numpy as np

# --- Timing -------------------------------------------------------------------
SAMPLE_RATE = 16000
FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640

# --- Spectral framing shared by MFCC and log-mel ------------------------------
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
FFT_LENGTH = 512  # DFT length: 400-sample frames zero-padded
HOPS_PER_FRAME = SAMPLES_PER_FRAME // HOP_LENGTH  # 4

# --- Speech2Vid MFCC -----------------------------------------------------------
MFCC_MEL_BANDS = 40
MFCC_FMIN = 300.0
MFCC_FMAX = 3700.0
MFCC_NUM_CEPSTRA = 13
MFCC_KEEP = slice(1, 13)  # cepstra 2..13 (1-based): drop c1, the energy term
MFCC_COEFFS = 12
MFCC_WINDOW_HOPS = 35  # 0.35 s
# Window of frame t: 35 spectral frames centred (every 10 ms) on the frame
# centre, each spectral frame reading WIN_LENGTH samples around its centre.
_MFCC_HALF_SPAN = (MFCC_WINDOW_HOPS // 2) * HOP_LENGTH + WIN_LENGTH // 2  # 2920
MFCC_WINDOW_SAMPLES = 2 * _MFCC_HALF_SPAN  # 5840 samples = 0.365 s
MFCC_WINDOW_OFFSET = SAMPLES_PER_FRAME // 2 - _MFCC_HALF_SPAN  # -2600

# --- Log-mel for the lip-at-a-glance model -------------------------------------
LOG_MEL_BANDS = 128
LOG_MEL_FMIN = 0.0
LOG_MEL_FMAX = SAMPLE_RATE / 2
# Spectral frame i of video frame t is centred on sample 640 t + 80 + 160 i
# (i = 0..3), symmetric about the frame centre 640 t + 320.
LOG_MEL_FIRST_CENTRE = HOP_LENGTH // 2  # 80
# Lips at a glance: 16 video frames (0.64 s) generated at once from their 64 x 128 log-mel.
GLANCE_FRAMES = 16
# Raw samples a window of video frames t0 .. t0 + n - 1 reads for its log-mel (``log_mel_window_range``).
_LOG_MEL_MARGIN = WIN_LENGTH // 2 - LOG_MEL_FIRST_CENTRE  # 120 before frame t0, 120 after the last frame

# --- Raw waveform windows for the temporal GAN -------------------------------
WAVE_WINDOW_SAMPLES = int(0.16 * SAMPLE_RATE)  # 2560
WAVE_WINDOW_OFFSET = SAMPLES_PER_FRAME // 2 - WAVE_WINDOW_SAMPLES // 2  # -960

# --- Sync expert (SyncNet-style) -------------------------------------------------
# 5 video frames (t - 2 .. t + 2) against the 0.2 s of MFCC they span: 20 hops
# whose centres fall inside samples [640 (t - 2), 640 (t + 3)).
SYNC_FRAMES = 5
SYNC_MFCC_HOPS = SYNC_FRAMES * HOPS_PER_FRAME  # 20

LOG_FLOOR = 1e-6  # keeps log finite on digital silence


# --- Timing helpers ---------------------------------------------------------------


def num_frames(num_samples: int, fps: float = FPS) -> int:
    """Video frames covered by ``num_samples`` of audio: a partial frame counts."""
    return int(np.ceil(num_samples * fps / SAMPLE_RATE - 1e-9))


def frame_to_sample(t: int | np.ndarray) -> int | np.ndarray:
    """First audio sample of video frame ``t``."""
    return t * SAMPLES_PER_FRAME


def window_range(t: int, fps: float = FPS, samples: int = MFCC_WINDOW_SAMPLES) -> tuple[int, int]:
    """Raw samples ``[start, stop)`` of frame ``t``'s ``samples``-long window, centred on the frame's centre.

    At 25 fps the centre is sample ``640 t + 320``: the MFCC window (5840) is
    ``[640 t - 2600, 640 t + 3240)``, the temporal GAN's 0.16 s waveform window
    (2560) ``[640 t - 960, 640 t + 1600)``. At another output frame rate
    (``generate --fps``) the centre is ``(t + 0.5) / fps`` seconds.
    """
    start = round((t + 0.5) * SAMPLE_RATE / fps) - samples // 2
    return start, start + samples


def frames_ahead(fps: float = FPS, samples: int = MFCC_WINDOW_SAMPLES) -> int:
    """A window's look-ahead in frames: frame ``t`` can be made once the audio of frames up to ``t + frames_ahead``
    has arrived, and not before (its window's last sample lies in that frame; the most over 10 s of frames).

    Frame ``n``'s audio is ``[n, n + 1) * SAMPLE_RATE / fps``. At 25 fps: 5 for the MFCC window (it ends at
    ``640 t + 3240``, 40 samples into frame ``t + 5``: 0.1625 s after frame ``t`` ends), 2 for the temporal
    GAN's 0.16 s window (``640 t + 1600``). What a live stream waits for before it can show frame ``t``.
    """
    last = max(window_range(t, fps, samples)[1] - 1 - t * SAMPLE_RATE / fps for t in range(10 * math.ceil(fps)))
    return max(math.floor(last * fps / SAMPLE_RATE), 0)


def mfcc_window_range(t: int, fps: float = FPS) -> tuple[int, int]:
    """Raw samples ``[start, stop)`` that frame ``t``'s MFCC window reads."""
    return window_range(t, fps, MFCC_WINDOW_SAMPLES)


def wave_window_range(t: int) -> tuple[int, int]:
    """Raw samples ``[start, stop)`` of frame ``t``'s 0.16 s waveform window."""
    return window_range(t, FPS, WAVE_WINDOW_SAMPLES)


def segment_window_start(i, samples: int = MFCC_WINDOW_SAMPLES):
    """Where frame ``i``'s ``samples``-long window starts in a segment's stored PCM (``segment_pcm_range``)."""
    return i * SAMPLES_PER_FRAME + (MFCC_WINDOW_SAMPLES - samples) // 2


def log_mel_window_range(first_frame: int, frames: int = GLANCE_FRAMES) -> tuple[int, int]:
    """Raw samples ``[start, stop)`` the log-mel of video frames ``first_frame .. first_frame + frames - 1`` reads.

    Frame t's 4 spectral frames are centred on ``640 t + 80 + 160 i`` and read
    400 samples each, so the window is ``[640 t0 - 120, 640 (t0 + n) + 120)``:
    10480 samples for the 16 frames of a lips-at-a-glance window (25 fps only).
    """
    start = frame_to_sample(first_frame) - _LOG_MEL_MARGIN
    return start, frame_to_sample(first_frame + frames) + _LOG_MEL_MARGIN


def log_mel_window_samples(frames: int = GLANCE_FRAMES) -> int:
    start, stop = log_mel_window_range(0, frames)
    return stop - start


def padded_slice(waveform: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``waveform[start:stop]`` where samples outside the clip are zeros."""
    out = np.zeros(stop - start, dtype=waveform.dtype)
    lo, hi = max(start, 0), min(stop, len(waveform))
    if hi > lo:
        out[lo - start : hi - start] = waveform[lo:hi]
    return out


def segment_pcm_range(first_frame: int, frames: int) -> tuple[int, int]:
    """Raw samples ``[start, stop)`` that every window of frames ``first_frame ..
    first_frame + frames - 1`` reads: what a training example stores.

    Relative to ``start``, frame ``i``'s MFCC window is ``[640 i, 640 i + 5840)``
    and its 0.16 s waveform window starts at ``640 i + 1640``.
    """
    start = frame_to_sample(first_frame) + MFCC_WINDOW_OFFSET
    return start, frame_to_sample(first_frame + frames - 1) + MFCC_WINDOW_OFFSET + MFCC_WINDOW_SAMPLES


def delayed(waveform: np.ndarray, frames: int) -> np.ndarray:
    """The waveform with its sound ``frames`` video frames later (earlier when negative), same length."""
    shift = frames * SAMPLES_PER_FRAME
    if shift >= 0:
        return np.concatenate([np.zeros(shift, waveform.dtype), waveform])[: len(waveform)]
    return np.concatenate([waveform[-shift:], np.zeros(-shift, waveform.dtype)])


def pcm_window(waveform: np.ndarray, t: int, fps: float = FPS, samples: int = MFCC_WINDOW_SAMPLES) -> np.ndarray:
    """Raw samples of frame ``t``'s window (``window_range``), zero outside the clip, ``(samples,)``.

    What the exported ``generate_frame_pcm`` / ``generate_step`` signatures take as input.
    """
    return padded_slice(waveform, *window_range(t, fps, samples))


# --- Constant matrices shared by the NumPy and TF implementations ----------------


@functools.cache
def hamming_window() -> np.ndarray:
    """Periodic Hamming window of ``WIN_LENGTH`` samples, float32."""
    n = np.arange(WIN_LENGTH)
    return (0.54 - 0.46 * np.cos(2 * np.pi * n / WIN_LENGTH)).astype(np.float32)


@functools.cache
def mel_matrix(bands: int, fmin: float, fmax: float) -> np.ndarray:
    """``(FFT_LENGTH // 2 + 1, bands)`` HTK mel filterbank, float32."""
    import librosa

    fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=FFT_LENGTH, n_mels=bands, fmin=fmin, fmax=fmax, htk=True, norm=None)
    return np.ascontiguousarray(fb.T.astype(np.float32))


@functools.cache
def dct_matrix() -> np.ndarray:
    """``(MFCC_MEL_BANDS, MFCC_COEFFS)`` orthonormal DCT-II, keeping cepstra 2..13."""
    n = MFCC_MEL_BANDS
    k = np.arange(MFCC_NUM_CEPSTRA)[None, :]
    m = np.arange(n)[:, None]
    basis = np.cos(np.pi / n * (m + 0.5) * k) * np.sqrt(2.0 / n)
    basis[:, 0] *= np.sqrt(0.5)
    return np.ascontiguousarray(basis[:, MFCC_KEEP].astype(np.float32))


# --- NumPy features (data preparation) ------------------------------------------------


def _power_spectrum(waveform: np.ndarray, first_centre: int, count: int) -> np.ndarray:
    """``(count, FFT_LENGTH // 2 + 1)`` power spectra centred every hop from ``first_centre``."""
    starts = first_centre - WIN_LENGTH // 2 + HOP_LENGTH * np.arange(count)
    if count == 0:
        return np.zeros((0, FFT_LENGTH // 2 + 1), np.float32)
    padded = padded_slice(waveform.astype(np.float32), int(starts[0]), int(starts[-1]) + WIN_LENGTH)
    idx = (starts - starts[0])[:, None] + np.arange(WIN_LENGTH)[None, :]
    frames = padded[idx] * hamming_window()
    spec = np.fft.rfft(frames, n=FFT_LENGTH, axis=-1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def mfcc_sequence(waveform: np.ndarray, frames: int) -> np.ndarray:
    """MFCC of a whole clip, ``(MFCC_COEFFS, 4 * frames + 31)``, float32.

    Column ``c`` is centred on sample ``-2400 + 160 c``; the window of video
    frame ``t`` is ``seq[:, 4 t : 4 t + 35]`` (``mfcc_window_slice``), centred
    on sample ``640 t + 320``.
    Computing it once per clip and slicing is 9x cheaper than per-frame windows.
    """
    count = HOPS_PER_FRAME * (frames - 1) + MFCC_WINDOW_HOPS if frames > 0 else 0
    first_centre = MFCC_WINDOW_OFFSET + WIN_LENGTH // 2
    power = _power_spectrum(waveform, first_centre, count)
    log_mel = np.log(power @ mel_matrix(MFCC_MEL_BANDS, MFCC_FMIN, MFCC_FMAX) + LOG_FLOOR)
    return np.ascontiguousarray((log_mel @ dct_matrix()).T)


def mfcc_window_slice(t):
    """Columns ``[start, stop)`` of ``mfcc_sequence`` holding frame ``t``'s window.

    Works on Python ints and on tensors (tf.data slicing uses it too).
    """
    start = t * HOPS_PER_FRAME
    return start, start + MFCC_WINDOW_HOPS


def sync_mfcc_slice(t):
    """Columns ``[start, stop)`` of ``mfcc_sequence`` that the sync expert pairs with frames ``t - 2 .. t + 2``.

    Column ``4 t + 17`` is centred on frame ``t``'s centre; the 20 columns
    ``[4 t + 7, 4 t + 27)`` are those centred inside the five frames.
    Works on Python ints, NumPy arrays and tensors.
    """
    start = t * HOPS_PER_FRAME + MFCC_WINDOW_HOPS // 2 - SYNC_MFCC_HOPS // 2
    return start, start + SYNC_MFCC_HOPS


def parameters() -> dict:
    """Every audio parameter a model depends on: saved with prepared data, training runs and exports.

    Data prepared with other values is refused by evaluation and export.
    """
    return {
        "sample_rate": SAMPLE_RATE,
        "fps": FPS,
        "win_length": WIN_LENGTH,
        "hop_length": HOP_LENGTH,
        "fft_length": FFT_LENGTH,
        "mfcc_mel_bands": MFCC_MEL_BANDS,
        "mfcc_fmin": MFCC_FMIN,
        "mfcc_fmax": MFCC_FMAX,
        "mfcc_coefficients": MFCC_COEFFS,
        "mfcc_window_hops": MFCC_WINDOW_HOPS,
        "log_mel_bands": LOG_MEL_BANDS,
        "log_floor": LOG_FLOOR,
    }


def mfcc_windows(waveform: np.ndarray, frames: int) -> np.ndarray:
    """``(frames, 12, 35)`` Speech2Vid MFCC windows, one per video frame."""
    seq = mfcc_sequence(waveform, frames)
    return (
        np.stack([seq[:, slice(*mfcc_window_slice(t))] for t in range(frames)])
        if frames
        else np.zeros((0, MFCC_COEFFS, MFCC_WINDOW_HOPS), np.float32)
    )


def mfcc_from_pcm_window(window: np.ndarray) -> np.ndarray:
    """``(12, 35)`` MFCC of one raw ``pcm_window``: the NumPy twin of ``mfcc_tf``."""
    power = _power_spectrum(window, WIN_LENGTH // 2, MFCC_WINDOW_HOPS)
    log_mel = np.log(power @ mel_matrix(MFCC_MEL_BANDS, MFCC_FMIN, MFCC_FMAX) + LOG_FLOOR)
    return (log_mel @ dct_matrix()).T


def log_mel_frames(waveform: np.ndarray, frames: int) -> np.ndarray:
    """``(frames, 4, 128)`` log-mel spectrogram, 4 spectral frames per video frame."""
    power = _power_spectrum(waveform, LOG_MEL_FIRST_CENTRE, HOPS_PER_FRAME * frames)
    log_mel = np.log(power @ mel_matrix(LOG_MEL_BANDS, LOG_MEL_FMIN, LOG_MEL_FMAX) + LOG_FLOOR)
    return log_mel.reshape(frames, HOPS_PER_FRAME, LOG_MEL_BANDS).astype(np.float32)


def log_mel_from_pcm_window(window: np.ndarray, frames: int = GLANCE_FRAMES) -> np.ndarray:
    """``(log_mel_window_samples(frames),)`` raw samples -> ``(4 frames, 128)`` log-mel.

    The same log-mel as ``log_mel_frames`` makes it.
    """
    power = _power_spectrum(
        np.asarray(window, np.float32), _LOG_MEL_MARGIN + LOG_MEL_FIRST_CENTRE, HOPS_PER_FRAME * frames
    )
    log_mel = np.log(power @ mel_matrix(LOG_MEL_BANDS, LOG_MEL_FMIN, LOG_MEL_FMAX) + LOG_FLOOR)
    return log_mel.astype(np.float32)


def frame_rms(waveform: np.ndarray, frames: int) -> np.ndarray:
    """``(frames,)`` RMS energy of each video frame's own 40 ms of audio."""
    chunk = padded_slice(waveform.astype(np.float32), 0, frames * SAMPLES_PER_FRAME)
    return np.sqrt(np.mean(chunk.reshape(frames, SAMPLES_PER_FRAME) ** 2, axis=1) + 1e-12)


# --- TensorFlow MFCC (export graphs; converts to TFLite builtins) -------------------


def windowed_dft_matrices() -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) matrices ``(WIN_LENGTH, FFT_LENGTH // 2 + 1)`` of the Hamming-windowed real DFT.

    A frame of ``WIN_LENGTH`` samples, zero-padded to ``FFT_LENGTH``, has
    spectrum ``frame @ cos - 1j * frame @ sin``: the window and the padding
    are folded into the matrices.
    """
    n = np.arange(WIN_LENGTH)[:, None]
    k = np.arange(FFT_LENGTH // 2 + 1)[None, :]
    angle = 2.0 * np.pi * n * k / FFT_LENGTH
    window = hamming_window()[:, None].astype(np.float64)
    return (window * np.cos(angle)).astype(np.float32), (window * np.sin(angle)).astype(np.float32)


def float16_exact_parts(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` as float32 ``(2, *shape)``: a high and a low part, each exact in float16, summing to it within 1e-7.

    TFLite's float16 export rounds every constant to 11 bits. A DFT matrix so
    rounded leaks about 5e-4 of a frame's energy into every bin: 0.2 in the
    log of a quiet band, against 4e-4 for the high part plus the low part.
    """
    high = matrix.astype(np.float16)
    low = (matrix.astype(np.float64) - high).astype(np.float16)
    return np.stack([high, low]).astype(np.float32)


def _power_spectrum_tf(pcm_windows, hops: int):
    """``(B, samples)`` -> ``(B, hops, FFT_LENGTH // 2 + 1)`` power of the windowed DFT of each hop's frame.

    Gather and matmuls: the DFT is constant matrices, not an RFFT op, so the
    graph converts to TFLite builtins and to ONNX (tf2onnx cannot take RFFT's
    real and imaginary parts). Its cos and sin halves are split into
    ``float16_exact_parts``, so a float16 export keeps float32's spectrum.
    """
    import tensorflow as tf

    starts = np.arange(hops) * HOP_LENGTH
    index = (starts[:, None] + np.arange(WIN_LENGTH)[None, :]).astype(np.int32)
    frames = tf.gather(pcm_windows, tf.constant(index), axis=1)  # (B, hops, 400)

    def project(matrix):  # (B, hops, 400) -> (B, hops, 257); matmuls and adds only, kept float32 in int8 models
        high, low = float16_exact_parts(matrix)
        return tf.matmul(frames, tf.constant(high)) + tf.matmul(frames, tf.constant(low))

    cos, sin = windowed_dft_matrices()
    return project(cos) ** 2 + project(sin) ** 2


def mfcc_tf(pcm_windows):
    """``(B, 5840)`` float32 raw windows in [-1, 1] -> ``(B, 12, 35)`` MFCC.

    Gather and matmuls only (see ``_power_spectrum_tf``), about 14 M
    multiply-adds per window.
    """
    import tensorflow as tf

    power = _power_spectrum_tf(pcm_windows, MFCC_WINDOW_HOPS)  # (B, 35, 257)
    mel = tf.matmul(power, tf.constant(mel_matrix(MFCC_MEL_BANDS, MFCC_FMIN, MFCC_FMAX)))
    cepstra = tf.matmul(tf.math.log(mel + LOG_FLOOR), tf.constant(dct_matrix()))  # (B, 35, 12)
    return tf.transpose(cepstra, [0, 2, 1])


def log_mel_tf(pcm_windows, frames: int = GLANCE_FRAMES):
    """``(B, log_mel_window_samples(frames))`` float32 raw windows -> ``(B, 4 frames, 128)`` log-mel.

    The graph twin of ``log_mel_from_pcm_window``, with ``mfcc_tf``'s builtin-only DFT.
    """
    import tensorflow as tf

    power = _power_spectrum_tf(pcm_windows, HOPS_PER_FRAME * frames)  # (B, 4 n, 257)
    mel = tf.matmul(power, tf.constant(mel_matrix(LOG_MEL_BANDS, LOG_MEL_FMIN, LOG_MEL_FMAX)))
    return tf.math.log(mel + LOG_FLOOR)


# --- Reading audio -------------------------------------------------------------------


def to_float(waveform: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1]; float input passes through as float32."""
    if waveform.dtype == np.int16:
        return waveform.astype(np.float32) / 32768.0
    return waveform.astype(np.float32)


def to_int16(waveform: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> int16 PCM (clipped)."""
    return (np.clip(waveform, -1.0, 1.0) * 32767.0).round().astype(np.int16)
