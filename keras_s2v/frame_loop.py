"""The call sequence of a served generator: identity once, then one frame per audio window.

Backends differ only in how they run the two exported signatures (TF Serving
through ``serving_client.ServingClient``, LiteRT on the device); the loop, the
face input and the video writing live here and import no TensorFlow, so every
client shares them.

A backend is any object with two methods (``FrameBackend``):

* ``identity_features(faces)``: ``faces`` uint8 ``(1, 112, 112, 3 n)`` RGB
  0..255 -> dict of ``identity`` (and ``skip_14``, ``skip_6`` for models with
  skip connections), each with batch 1.
* ``generate_frame_pcm(identity, pcm)``: that dict (batch 1; the backend
  repeats it to the batch) and ``pcm`` float32 ``(N, window_samples)`` raw
  16 kHz windows, frame t's centred on it (``audio.window_range``) -> frames
  float32 ``(N, 112, 112, 3)`` RGB in [0, 1].

and the attributes ``window_samples`` (5840 for Speech2Vid's MFCC window),
``num_identity_images``, ``face_size``, ``description`` and ``masked_target``.

A ``masked_target`` backend (Wav2Lip's conditioning, ``Speech2Vid(masked_target=True)``)
takes one more face, first: the frame being made, whose lower half it never
sees. ``identity_faces`` puts it there: a photo is its own target (identity
once), a re-dubbed video's frames are each their own (``identity_features``
on N rows, then ``generate_frame_pcm`` with one identity row per window).
``num_identity_images`` counts the reference faces only. Its export's
``identity_features`` takes the target as a second input, ``target``
(``identity_inputs`` splits the stacked faces for it).

``identity_features`` starts a sequence: the ``generate_frame_pcm`` calls
after it must bring consecutive frames in order. A Speech2Vid generator
does not care; a recurrent one (``StreamingGenerator``: the temporal GAN)
carries its state from each frame to the next, and a window generator
(``WindowedGenerator``: lips at a glance) makes lip frames a window of
frames at a time and cross-fades the windows that overlap.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np

from keras_s2v import outputs
from keras_s2v.data import audio as audio_lib
from keras_s2v.data import media
from keras_s2v.signature_names import FACES, FRAME, NOISE, PCM, TARGET

FACE_SIZE = 112  # side of the aligned face the exported signatures take and give


class FrameBackend(Protocol):
    def identity_features(self, faces: np.ndarray) -> dict[str, np.ndarray]: ...

    def generate_frame_pcm(self, identity: dict[str, np.ndarray], pcm: np.ndarray) -> np.ndarray: ...


def face_input(images: Sequence[np.ndarray], names: Sequence[str] | None = None, size: int = FACE_SIZE) -> np.ndarray:
    """``(1, size, size, 3 n)`` uint8 ``faces`` input from n aligned RGB face crops.

    Each crop must be square (the aligned crop ``prepare`` and ``generate``
    make); other sizes are resized to ``size``. ``names`` (file names) go
    into the error messages.
    """
    import cv2

    if not images:
        raise ValueError("no face image given")
    names = list(names) if names is not None else [f"face image {i}" for i in range(len(images))]
    crops = []
    for image, name in zip(images, names, strict=True):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"{name}: expected an RGB image (H, W, 3), got shape {image.shape}")
        height, width = image.shape[:2]
        if height != width:
            raise ValueError(
                f"{name}: {width}x{height} is not square: give the aligned face crop "
                f"({size}x{size}), not the original photo"
            )
        if height != size:
            interpolation = cv2.INTER_AREA if height > size else cv2.INTER_LINEAR
            image = cv2.resize(image, (size, size), interpolation=interpolation)
        crops.append(image.astype(np.uint8))
    return np.concatenate(crops, axis=-1)[None]


def identity_faces(backend, faces: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """The ``identity_features`` input: ``faces`` (1, S, S, 3 n) uint8 as they are, or for a
    ``masked_target`` backend each of ``targets`` (N, S, S, 3) before them, (N, S, S, 3 (n + 1));
    no ``targets``: the first face is its own (a photo)."""
    faces = np.asarray(faces, np.uint8)
    if not getattr(backend, "masked_target", False):
        return faces
    targets = faces[..., :3] if targets is None else np.asarray(targets, np.uint8)
    return np.concatenate([targets, np.repeat(faces, len(targets), axis=0)], axis=-1)


def identity_rows(identity: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """``identity_features`` outputs for ``count`` windows: one row repeated, or already one per window."""
    rows = {k: np.asarray(v) for k, v in identity.items()}
    lengths = {len(v) for v in rows.values()}
    if lengths == {count}:
        return rows
    if lengths != {1}:
        raise ValueError(f"identity outputs with {sorted(lengths)} rows for {count} audio windows: give 1 or {count}")
    return {k: np.repeat(v, count, axis=0) for k, v in rows.items()}


def identity_inputs(backend, faces: np.ndarray) -> dict[str, np.ndarray]:
    """The exported ``identity_features``' named inputs from ``identity_faces``' uint8 (N, S, S, 3 (n + 1 | 0)):
    ``faces``, or for a ``masked_target`` backend ``target`` (the first 3 channels) and ``faces`` (the rest).

    A wrong channel count is refused here, naming what the model takes (the
    exported graph would fail with a shape error).
    """
    faces = np.asarray(faces, np.uint8)
    masked, count = bool(getattr(backend, "masked_target", False)), backend.num_identity_images
    channels = 3 * (count + masked)
    if faces.ndim != 4 or faces.shape[-1] != channels:
        what = f"the target frame and {count} reference face(s) (identity_faces)" if masked else f"{count} face(s)"
        raise ValueError(f"{backend.description} takes {what}: faces of shape (N, S, S, {channels}), got {faces.shape}")
    if not masked:
        return {FACES: faces}
    return {TARGET: faces[..., :3], FACES: faces[..., 3:]}


def check_face_count(backend, count: int, flag: str = "--face") -> None:
    """Refuse a wrong number of face crops for ``backend``, saying how many it needs."""
    if count != backend.num_identity_images:
        masked = getattr(backend, "masked_target", False)
        target = "; the first is also the frame being made (masked target)" if masked else ""
        raise ValueError(
            f"{backend.description} needs {backend.num_identity_images} aligned face crop(s) "
            f"({flag} IMAGE, repeated), got {count}{target}"
        )


def read_faces(paths: Sequence[str], size: int = FACE_SIZE) -> np.ndarray:
    """``face_input`` from image files; ``MediaError`` / ``ValueError`` name the file."""
    return face_input([media.read_image(path) for path in paths], [str(p) for p in paths], size)


class PcmWindower:
    """Audio in chunks of any size in, each video frame's ``generate_frame_pcm`` window out.

    Frame ``t`` reads the ``samples`` centred on its centre
    (``audio.window_range``; at 25 fps the 5840-sample MFCC window is
    ``[640 t - 2600, 640 t + 3240)``). Samples before the start and after the
    end of the audio are zero. A window is ready as soon as its last sample
    has arrived; only the samples later windows still need are kept, so
    memory does not grow with the audio's length.
    """

    def __init__(self, fps: float = audio_lib.FPS, samples: int = audio_lib.MFCC_WINDOW_SAMPLES):
        self.fps = fps
        self.samples = samples
        self.next_frame = 0
        self.received = 0
        self._start = min(self._window(0)[0], 0)  # absolute index of _buffer[0]; before 0 it is padding
        self._buffer = np.zeros(-self._start, np.float32)

    def _window(self, t: int) -> tuple[int, int]:
        return audio_lib.window_range(t, self.fps, self.samples)

    def _ready(self) -> Iterator[np.ndarray]:
        while self._window(self.next_frame)[1] <= self._start + len(self._buffer):
            first = self._window(self.next_frame)[0] - self._start
            yield self._buffer[first : first + self.samples].copy()
            self.next_frame += 1
            drop = max(self._window(self.next_frame)[0] - self._start, 0)
            self._buffer, self._start = self._buffer[drop:], self._start + drop

    def push(self, chunk: np.ndarray) -> Iterator[np.ndarray]:
        chunk = audio_lib.to_float(np.asarray(chunk))
        self.received += len(chunk)
        self._buffer = np.concatenate([self._buffer, chunk])
        yield from self._ready()

    def finish(self) -> Iterator[np.ndarray]:
        """The remaining windows, zero-padded: one frame per started ``1 / fps`` of audio."""
        total = audio_lib.num_frames(self.received, self.fps)
        if self.next_frame < total:
            pad = self._window(total - 1)[1] - (self._start + len(self._buffer))
            self._buffer = np.concatenate([self._buffer, np.zeros(max(pad, 0), np.float32)])
            yield from self._ready()


def audio_windows(
    chunks: Iterable[np.ndarray],
    fps: float = audio_lib.FPS,
    then_silence: bool = False,
    samples: int = audio_lib.MFCC_WINDOW_SAMPLES,
) -> Iterator[np.ndarray]:
    """Each frame's raw window from audio chunks: one per started ``1 / fps`` s.

    ``then_silence``: go on past the end with windows of silence, forever
    (the caller stops); for video that outlasts its new audio.
    """
    windower = PcmWindower(fps, samples)
    for chunk in chunks:
        yield from windower.push(chunk)
    if not then_silence:
        yield from windower.finish()
        return
    silence = np.zeros(audio_lib.SAMPLE_RATE // 5, np.float32)
    while True:
        yield from windower.push(silence)


def window_batches(
    chunks: Iterable[np.ndarray],
    batch_size: int,
    fps: float = audio_lib.FPS,
    samples: int = audio_lib.MFCC_WINDOW_SAMPLES,
) -> Iterator[list[np.ndarray]]:
    """``audio_windows`` in lists of at most ``batch_size``, each list as soon as a chunk has made its windows
    ready: a batch is never held back to fill up (a live stream's frames go out without waiting for later audio)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    windower = PcmWindower(fps, samples)
    for chunk in chunks:
        yield from batched(windower.push(chunk), batch_size)
    yield from batched(windower.finish(), batch_size)


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Lists of ``size`` consecutive items (the last may be shorter), each drawn from ``items`` when it is asked for."""
    items = iter(items)
    while batch := list(itertools.islice(items, size)):
        yield batch


PCM_SAMPLE_BYTES = 2  # raw PCM on a pipe: 16-bit little-endian (s16le), mono, audio.SAMPLE_RATE


def read_pcm(
    stream, name: str = "standard input", chunk_samples: int = audio_lib.SAMPLES_PER_FRAME
) -> Iterator[np.ndarray]:
    """Float32 chunks of raw 16 kHz mono s16le PCM from a binary ``stream`` (a pipe, standard input), until it ends.

    Each chunk is what one read returned, at most ``chunk_samples``: whatever has arrived, without waiting
    for more (``read1``), so a live source's audio is passed on as it comes. A stream that ends in the
    middle of a sample is a ``ValueError`` naming ``name``.
    """
    read = getattr(stream, "read1", None) or stream.read
    size = max(int(chunk_samples), 1) * PCM_SAMPLE_BYTES
    pending, total = b"", 0
    while data := read(size):
        data = pending + data
        whole = len(data) - len(data) % PCM_SAMPLE_BYTES
        pending = data[whole:]
        if whole:
            total += whole
            yield audio_lib.to_float(np.frombuffer(data[:whole], "<i2").astype(np.int16))
    if pending:
        raise ValueError(
            f"{name}: ended in the middle of a sample ({total + len(pending)} bytes): expected raw 16-bit "
            f"PCM (s16le, mono, {audio_lib.SAMPLE_RATE} Hz), 2 bytes a sample"
        )


def pcm_windows(
    waveform: np.ndarray,
    first: int,
    count: int,
    fps: float = audio_lib.FPS,
    samples: int = audio_lib.MFCC_WINDOW_SAMPLES,
) -> np.ndarray:
    """``(count, samples)`` float32 raw windows of frames ``first .. first + count - 1``."""
    waveform = audio_lib.to_float(np.asarray(waveform))
    return np.stack([audio_lib.pcm_window(waveform, first + i, fps, samples) for i in range(count)]).astype(np.float32)


def check_frame_rate(backend, fps: float, what: str) -> None:
    """Refuse a frame rate a model cannot make: a window model's audio windows are timed in 25 fps frames."""
    fixed = getattr(backend, "fixed_fps", None)
    if fixed and abs(fps - fixed) > 1e-3:
        raise ValueError(
            f"{what} is {fps:g} fps, but {backend.description} makes {fixed:g} fps video only "
            f"(give --fps {fixed:g}, or convert the video: ffmpeg -i IN -r {fixed:g} OUT)"
        )


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Frames in [0, 1] -> uint8 0..255."""
    return (np.clip(np.asarray(frames, np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def talking_frames(
    backend: FrameBackend,
    faces_uint8: np.ndarray,
    waveform: np.ndarray,
    batch_size: int = 25,
    fps: float = audio_lib.FPS,
) -> Iterator[np.ndarray]:
    """Yield uint8 ``(112, 112, 3)`` frames for the audio, one per ``1 / fps`` seconds.

    ``identity_features`` runs once; ``generate_frame_pcm`` runs on up to
    ``batch_size`` windows per call, frame ``t`` on ``audio.pcm_window(t)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    identity = backend.identity_features(faces_uint8)
    total = audio_lib.num_frames(len(waveform), fps)
    for first in range(0, total, batch_size):
        count = min(batch_size, total - first)
        windows = pcm_windows(waveform, first, count, fps, backend.window_samples)
        frames = np.asarray(backend.generate_frame_pcm(identity, windows))
        if frames.ndim != 4 or frames.shape[0] != count:
            raise ValueError(f"generate_frame_pcm gave frames of shape {frames.shape} for {count} window(s)")
        yield from to_uint8(frames)


def write_talking_video(
    backend: FrameBackend,
    faces_uint8: np.ndarray,
    waveform: np.ndarray,
    out,
    batch_size: int = 25,
    fps: float = audio_lib.FPS,
    overwrite: bool = False,
    progress: bool = True,
    inputs=(),
) -> int:
    """Stream ``talking_frames`` into ``out`` (mp4, audio muxed); returns the frame count.

    The output appears only when every frame is written; an existing file is
    kept unless ``overwrite``.
    """
    from tqdm import tqdm

    outputs.check_file(out, inputs=inputs, overwrite=overwrite)  # before any call to the backend
    total = audio_lib.num_frames(len(waveform), fps)
    frames = talking_frames(backend, faces_uint8, waveform, batch_size, fps)
    first = next(frames, None)
    if first is None:
        raise ValueError("the audio is too short for one video frame")
    height, width = first.shape[:2]
    with media.VideoWriter(out, width, height, fps, audio=waveform, overwrite=overwrite) as writer:
        for frame in tqdm(itertools.chain([first], frames), total=total, unit="frame", disable=not progress):
            writer.write(frame)
    return writer.frames_written


class StreamingGenerator:
    """A recurrent generator (the temporal GAN) as a ``FrameBackend``: one step per frame, state kept between calls.

    Runtimes differ only in two callables:

    * ``identity_fn(faces uint8 (1, S, S, 3)) -> identity outputs``;
    * ``step_fn(inputs) -> outputs``, the exported ``generate_step``: identity
      outputs + ``pcm`` (1, window_samples) + ``noise`` (1, noise_dim) standard
      normal draws (the step scales them by the model's ``noise_std``) + the
      GRU states -> ``frame`` and the new states under the same names.

    ``identity_features`` starts a new sequence: zero states and the noise
    stream restarted from ``seed``, so the same face and audio give the same
    video every time.
    """

    num_identity_images = 1

    def __init__(
        self,
        identity_fn,
        step_fn,
        state_shapes: dict,
        noise_dim: int,
        window_samples: int,
        description: str,
        face_size: int = FACE_SIZE,
        seed: int = 0,
    ):
        self._identity_fn, self._step_fn = identity_fn, step_fn
        self.state_shapes = dict(state_shapes)
        self.noise_dim, self.seed = noise_dim, seed
        self.window_samples = window_samples
        self.description = description
        self.face_size = face_size
        self.reset()

    def reset(self) -> None:
        self.states = {k: np.zeros((1, *shape), np.float32) for k, shape in self.state_shapes.items()}
        self._rng = np.random.default_rng(self.seed)

    def identity_features(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        self.reset()
        return {k: np.asarray(v) for k, v in self._identity_fn(np.asarray(faces, np.uint8)).items()}

    def generate_frame_pcm(self, identity: dict[str, np.ndarray], pcm: np.ndarray) -> np.ndarray:
        """(N, window_samples) consecutive windows -> (N, S, S, 3) frames, one step each, in order."""
        frames = []
        for window in np.asarray(pcm, np.float32):
            noise = self._rng.standard_normal((1, self.noise_dim)).astype(np.float32)
            out = self._step_fn({**identity, PCM: window[None], NOISE: noise, **self.states})
            self.states = {k: np.asarray(out[k]) for k in self.states}
            frames.append(np.asarray(out[FRAME]))
        return np.concatenate(frames)


def windowed_row_samples(window_frames: int) -> int:
    """``WindowedGenerator.window_samples``: the per-frame row holding both windows that cover a frame.

    Window ``k`` is frames ``[hop k, hop k + window_frames)`` (``hop =
    window_frames // 2``) and reads ``audio.log_mel_window_range(hop k,
    window_frames)``; frame ``t = hop k + j`` needs windows ``k - 1`` and ``k``,
    whose samples run from the start of window ``k - 1`` at ``j = hop - 1`` to
    the end of window ``k`` at ``j = 0``. The row is centred on the frame
    (``audio.window_range``, 25 fps), so it is twice the larger distance from
    the centre: 20080 samples, ``[640 t - 9720, 640 t + 10360)``, for 16 frames.
    """
    hop = window_frames // 2
    centre = audio_lib.SAMPLES_PER_FRAME // 2  # frame 0's centre at 25 fps
    start = audio_lib.log_mel_window_range(1 - 2 * hop, window_frames)[0]
    stop = audio_lib.log_mel_window_range(0, window_frames)[1]
    return 2 * max(centre - start, stop - centre)


class WindowedGenerator:
    """A window generator (lips at a glance) as a ``FrameBackend``: lip frames a window at a time, cross-faded.

    Runtimes differ only in two callables:

    * ``identity_fn(faces uint8 (1, S, S, 3)) -> identity outputs`` (the
      exported ``identity_features``: the lip crop of the face, encoded);
    * ``window_fn(identity outputs (batch 1), pcm (N, audio.log_mel_window_samples(window_frames)))
      -> lips (N, window_frames, L, L, 3)`` (the exported ``generate_window``,
      run on each of N windows with the same identity).

    Window ``k`` covers frames ``[hop k, hop k + window_frames)`` with ``hop =
    window_frames // 2``: each frame after the first ``hop`` lies in two
    windows. Frame ``t = hop k + j`` (``0 <= j < hop``) is the cross-fade of
    window ``k``'s frame ``j`` (weight ``(j + 0.5) / hop``) and window ``k - 1``'s
    frame ``j + hop`` (the rest); frames before the first overlap come from
    window 0 alone. The blended lips are pasted into the aligned face
    (``paste.lips_into_face``), so frames are ``(S, S, 3)`` like every backend's.

    ``generate_frame_pcm`` takes each frame's ``window_samples`` row
    (``windowed_row_samples``: both windows' audio, centred on the frame), cuts
    the windows out of it, runs ``window_fn`` once per window (the new windows
    of one call in one batch) and keeps them only while a later frame needs
    them. The log-mel windows are timed in 25 fps video frames: ``generate``
    and ``redub`` refuse other frame rates (``fixed_fps``).
    """

    num_identity_images = 1
    fixed_fps = audio_lib.FPS  # inference refuses other frame rates (``check_frame_rate``)

    def __init__(
        self,
        identity_fn,
        window_fn,
        window_frames: int,
        description: str,
        face_size: int = FACE_SIZE,
        lip_size: int = 64,
    ):
        if window_frames < 2:
            raise ValueError(f"window_frames must be at least 2, got {window_frames}")
        self._identity_fn, self._window_fn = identity_fn, window_fn
        self.window_frames, self.hop = window_frames, window_frames // 2
        self.window_pcm_samples = audio_lib.log_mel_window_samples(window_frames)
        self.window_samples = windowed_row_samples(window_frames)
        self.description = description
        self.face_size, self.lip_size = face_size, lip_size
        self.windows_computed = 0  # window_fn's windows since construction (a cost counter)
        self._face = None
        self.reset()

    def reset(self) -> None:
        self.next_frame = 0
        self._windows: dict[int, np.ndarray] = {}

    def identity_features(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        faces = np.asarray(faces, np.uint8)
        self.reset()
        self._face = faces[0, ..., :3].astype(np.float32) / 255.0  # what the lips are pasted into
        return {k: np.asarray(v) for k, v in self._identity_fn(faces).items()}

    def _row_offset(self, t: int, k: int) -> int:
        """Where window ``k``'s pcm starts in frame ``t``'s row."""
        row_start = audio_lib.window_range(t, audio_lib.FPS, self.window_samples)[0]
        return audio_lib.log_mel_window_range(self.hop * k, self.window_frames)[0] - row_start

    def generate_lips(self, identity: dict[str, np.ndarray], pcm: np.ndarray) -> np.ndarray:
        """(N, window_samples) rows of consecutive frames -> (N, L, L, 3) blended lip frames, in order."""
        rows = np.asarray(pcm, np.float32)
        first, count = self.next_frame, len(rows)
        new = {}  # window index -> its pcm, cut from the first row that holds it
        for i in range(count):
            k = (first + i) // self.hop
            for window in (k - 1, k):
                if window >= 0 and window not in self._windows and window not in new:
                    start = self._row_offset(first + i, window)
                    new[window] = rows[i, start : start + self.window_pcm_samples]
        if new:
            lips = np.asarray(self._window_fn(identity, np.stack(list(new.values()))), np.float32)
            expected = (len(new), self.window_frames)
            if lips.shape[:2] != expected:
                raise ValueError(
                    f"window_fn gave lips of shape {lips.shape} for {len(new)} window(s) of {self.window_frames} frames"
                )
            self._windows.update(zip(new, lips))
            self.windows_computed += len(new)
        out = []
        for i in range(count):
            k, j = divmod(first + i, self.hop)
            if k == 0:
                out.append(self._windows[0][j])
            else:
                weight = (j + 0.5) / self.hop
                out.append(weight * self._windows[k][j] + (1.0 - weight) * self._windows[k - 1][j + self.hop])
        self.next_frame = first + count
        keep = (self.next_frame // self.hop) - 1  # the next frame needs this window and the one after
        self._windows = {k: v for k, v in self._windows.items() if k >= keep}
        return np.stack(out).astype(np.float32) if out else np.zeros((0, self.lip_size, self.lip_size, 3), np.float32)

    def generate_frame_pcm(self, identity: dict[str, np.ndarray], pcm: np.ndarray) -> np.ndarray:
        """(N, window_samples) rows of consecutive frames -> (N, S, S, 3) faces with the blended lips."""
        from keras_s2v import paste

        if self._face is None:
            raise ValueError("call identity_features first: its face is what the lips are pasted into")
        lips = self.generate_lips(identity, pcm)
        if not len(lips):
            return np.zeros((0, *self._face.shape), np.float32)
        return np.stack([paste.lips_into_face(self._face, frame) for frame in lips])
