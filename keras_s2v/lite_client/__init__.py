"""Reference on-device client: the exact call sequence an Android app makes, with LiteRT.

    python -m keras_s2v.lite_client --model android_demo_assets/s2v_small_int8.tflite \
        --face android_demo_assets/face.png --audio android_demo_assets/speech.wav --out talking.mp4

1. Load the .tflite once (``Interpreter`` + ``get_signature_runner``).
2. Run ``identity_features`` once on the aligned 112 x 112 face (uint8 RGB).
   A masked-target export (``target`` among its inputs) also takes the frame
   being made as ``target``: for a photo, the face itself.
3. Feed microphone or file audio (16 kHz mono float) in chunks of any size
   to ``frame_loop.PcmWindower``; each time a video frame's 0.365 s window is complete
   (frame t needs samples up to 640 t + 3240, i.e. 0.2 s of look-ahead), run
   ``generate_frame_pcm`` on it with the stored identity outputs, batch 1.

A temporal GAN export (``generate_step``) differs only in step 3: its window
is the 0.16 s around the frame (0.1 s of look-ahead), and each step also
takes a standard-normal ``noise`` vector and the GRU states the previous
step returned (zeros for the first frame).

A lips-at-a-glance export (``generate_window``) makes 16 lip frames at once
from 0.655 s of audio (``audio.log_mel_window_range``); windows start every 8
frames, so each frame after the first 8 lies in two windows and is their
cross-fade (``frame_loop.WindowedGenerator``), pasted into the face's lip box.
Frame t's row then spans both windows: 1.255 s, ``[640 t - 9720, 640 t + 10360)``
(0.65 s of look-ahead).

No TensorFlow: NumPy, ``ai_edge_litert`` and ffmpeg only, like the app.
The command is ``__main__.py``; this library imports no command-line code.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from keras_s2v import frame_loop, outputs
from keras_s2v.data import audio as audio_lib
from keras_s2v.data import media
from keras_s2v.signature_names import (
    FACES,
    FRAME,
    FRAMES,
    GENERATE_FRAME_PCM,
    GENERATE_STEP,
    GENERATE_WINDOW,
    IDENTITY_FEATURES,
    NOISE,
    PCM,
    TARGET,
)


def _interpreter(path: Path, num_threads: int | None):
    from keras_s2v import model_files

    return model_files.load_tflite(path, num_threads)


def load(model_path, num_threads: int | None = None):
    """The ``frame_loop.FrameBackend`` of a .tflite export: Speech2Vid (``generate_frame_pcm``), a
    temporal GAN (``generate_step``, stepped frame by frame with its GRU states) or lips at a glance
    (``generate_window``, one window at a time, cross-faded)."""
    path = Path(model_path)
    interpreter = _interpreter(path, num_threads)
    if GENERATE_WINDOW in interpreter.get_signature_list():
        return _windowed(path, interpreter)
    if GENERATE_STEP not in interpreter.get_signature_list():
        return LiteTalkingFace(path, num_threads, interpreter)
    if IDENTITY_FEATURES not in interpreter.get_signature_list():
        raise ValueError(f"{path}: a generate_step model without identity_features; export it with python -m export")
    identity = interpreter.get_signature_runner(IDENTITY_FEATURES)
    step = interpreter.get_signature_runner(GENERATE_STEP)
    details = step.get_input_details()
    identity_keys = list(identity.get_output_details())
    states = {k: tuple(d["shape"][1:]) for k, d in details.items() if k not in (*identity_keys, PCM, NOISE)}
    backend = frame_loop.StreamingGenerator(
        lambda faces: dict(identity(**{FACES: faces})),
        lambda inputs: dict(step(**{k: np.asarray(inputs[k], np.float32) for k in details})),
        states,
        int(details[NOISE]["shape"][-1]),
        int(details[PCM]["shape"][-1]),
        f"TFLite {path}",
        int(identity.get_input_details()[FACES]["shape"][1]),
    )
    backend.interpreter = interpreter
    return backend


def _windowed(path: Path, interpreter):
    if IDENTITY_FEATURES not in interpreter.get_signature_list():
        raise ValueError(f"{path}: a generate_window model without identity_features; export it with python -m export")
    identity = interpreter.get_signature_runner(IDENTITY_FEATURES)
    generate = interpreter.get_signature_runner(GENERATE_WINDOW)
    keys = [k for k in interpreter.get_signature_list()[GENERATE_WINDOW]["inputs"] if k != PCM]
    frames_shape = generate.get_output_details()[FRAMES]["shape"]  # (1, window_frames, L, L, 3)

    def identity_fn(faces):
        return dict(identity(**{FACES: np.asarray(faces, np.uint8)}))

    def window_fn(identity_outputs, pcm):  # one window at a time, as on a phone
        inputs = {k: identity_outputs[k] for k in keys}
        return np.concatenate(
            [generate(**{PCM: window[None].astype(np.float32)}, **inputs)[FRAMES] for window in np.asarray(pcm)]
        )

    backend = frame_loop.WindowedGenerator(
        identity_fn,
        window_fn,
        int(frames_shape[1]),
        f"TFLite {path}",
        int(identity.get_input_details()[FACES]["shape"][1]),
        int(frames_shape[2]),
    )
    backend.interpreter = interpreter
    return backend


class LiteTalkingFace:
    """A Speech2Vid .tflite export, run signature by signature (a ``frame_loop.FrameBackend``).

    The signatures have a fixed batch of 1, as on a phone: ``identity_features``
    runs once per row and ``generate_frame_pcm`` once per window, window i with
    identity row i when there is one per window (a masked-target model re-dubbing
    a video: each frame is its own target, ``target`` among the identity inputs).
    """

    def __init__(self, model_path, num_threads: int | None = None, interpreter=None):
        self.path = Path(model_path)
        self.interpreter = interpreter if interpreter is not None else _interpreter(self.path, num_threads)
        signatures = self.interpreter.get_signature_list()
        missing = [s for s in (IDENTITY_FEATURES, GENERATE_FRAME_PCM) if s not in signatures]
        if missing:
            raise ValueError(
                f"{self.path}: no {', '.join(missing)} signature (has {', '.join(signatures) or 'none'}); "
                "export it with python -m export"
            )
        self._identity = self.interpreter.get_signature_runner(IDENTITY_FEATURES)
        self._generate = self.interpreter.get_signature_runner(GENERATE_FRAME_PCM)
        self.identity_keys = [k for k in signatures[GENERATE_FRAME_PCM]["inputs"] if k != PCM]
        faces_shape = self._identity.get_input_details()[FACES]["shape"]
        self.masked_target = TARGET in signatures[IDENTITY_FEATURES]["inputs"]
        self.num_identity_images = int(faces_shape[-1]) // 3
        self.face_size = int(faces_shape[1])
        self.window_samples = int(self._generate.get_input_details()[PCM]["shape"][-1])
        self.description = f"TFLite {self.path}"

    def identity_features(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 112, 112, 3 n) uint8 (masked target: 3 (n + 1), the target first) -> identity outputs, N rows.

        Once per face; one row at a time (the signature's batch is 1).
        """
        inputs = frame_loop.identity_inputs(self, faces)
        count = len(inputs[FACES])
        rows = [self._identity(**{k: v[i : i + 1] for k, v in inputs.items()}) for i in range(count)]
        return {k: np.concatenate([row[k] for row in rows]) for k in rows[0]}

    def generate_frame_pcm(self, identity: dict[str, np.ndarray], pcm: np.ndarray) -> np.ndarray:
        """(N, 5840) windows -> (N, 112, 112, 3) frames in [0, 1], one window at a time as on a phone.

        ``identity``: 1 row for every window, or N (window i with row i).
        """
        pcm = np.asarray(pcm, np.float32)
        rows = frame_loop.identity_rows({k: identity[k] for k in self.identity_keys}, len(pcm))
        frames = [
            self._generate(**{PCM: window[None]}, **{k: v[i : i + 1] for k, v in rows.items()})[FRAME]
            for i, window in enumerate(pcm)
        ]
        return np.concatenate(frames)


def stream_frames(client, faces: np.ndarray, chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """uint8 frames as the audio chunks arrive: identity once, then one generator call per frame.

    ``faces``: the aligned crops (1, S, S, 3 n); a masked-target model takes the
    first as the frame being made too (a photo, ``frame_loop.identity_faces``).
    """
    identity = client.identity_features(frame_loop.identity_faces(client, faces))
    for window in frame_loop.audio_windows(chunks, samples=client.window_samples):
        yield frame_loop.to_uint8(client.generate_frame_pcm(identity, window[None]))[0]


def audio_chunks(waveform: np.ndarray, chunk: int = audio_lib.SAMPLES_PER_FRAME) -> Iterator[np.ndarray]:
    """The waveform as an app's recorder would deliver it: 40 ms at a time."""
    for start in range(0, len(waveform), chunk):
        yield waveform[start : start + chunk]


def run(model_path, face_paths, audio_path, out, num_threads: int | None = None, overwrite: bool = False) -> dict:
    """Write ``out`` (mp4, audio muxed) from a face crop and speech; returns frames and timings."""
    inputs = [("--model", model_path), *(("--face", p) for p in face_paths), ("--audio", audio_path)]
    outputs.check_file(out, inputs=inputs, overwrite=overwrite)
    media.check_audio(audio_path)  # a cut file or NaN samples: the audio's fault, said before any work
    client = load(model_path, num_threads)
    frame_loop.check_face_count(client, len(face_paths))
    faces = frame_loop.read_faces(face_paths)
    waveform = media.read_audio(audio_path)
    started = time.perf_counter()
    with media.VideoWriter(
        out, frame_loop.FACE_SIZE, frame_loop.FACE_SIZE, audio_lib.FPS, audio=waveform, overwrite=overwrite
    ) as writer:
        for frame in stream_frames(client, faces, audio_chunks(waveform)):
            writer.write(frame)
    seconds = time.perf_counter() - started
    return {"frames": writer.frames_written, "seconds": seconds, "fps": writer.frames_written / max(seconds, 1e-9)}
