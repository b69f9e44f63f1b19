"""Talking faces from photos (``generate``) and re-dubbed videos (``redub``), streamed end to end.

The library behind ``python -m keras_s2v.generate`` and ``python -m keras_s2v.redub``:

1. detect the face and its 68 landmarks, align it exactly as ``prepare`` did;
2. run the identity encoder once (1 aligned face, or 5 for the 5-image model);
3. slide the 0.35 s window over the audio at the output frame rate and run
   the per-window generator (and the deblurring CNN) on batches of windows;
4. paste each generated face back into its frame (``paste.FaceBlender``:
   inverse similarity warp, gradient-domain blending of the lower face,
   ``blend="pyramid"`` or ``"poisson"``), or keep the aligned crop with ``crop=True``;
5. stream the frames into ffmpeg, which muxes the audio from its file.

The stages overlap: reading (decode, the face), generating, blending and
encoding run in threads joined by small bounded queues (``Pipeline``), each
stage in order, so the frames are those of the serial loop (``threads=False``).
Audio is decoded in chunks and video frame by frame, so memory does not grow
with the length of either. Every stage is timed (``Stages``) for the summary
and ``benchmarks/generate_bench.py``.

``stream_photo`` (``python -m keras_s2v.stream``) is ``generate`` on a live
source: raw PCM read from a pipe as it arrives, each frame handed out as soon
as its window's audio is there, through the same ``FrameRenderer``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from keras_s2v import frame_loop
from keras_s2v.data import audio as audio_lib
from keras_s2v.data import media
from keras_s2v.paste import BLENDS, DEFAULT_BLEND

# The aligned face's side, from the runtime's own contract: importing it from the models would load TensorFlow
# before a command has checked its inputs and outputs.
IMAGE_SIZE = frame_loop.FACE_SIZE

STAGES = ("decode", "detect", "identity", "generate", "deblur", "blend", "encode")
STREAM_STAGES = ("detect", "identity", "generate", "deblur", "blend", "write")  # stream_photo's: frames written out
AUDIO_FITS = ("loop", "trim", "pad")
SIMILAR_FACE_AREA = 0.5  # a second face at least this share of the largest's area makes a photo ambiguous
TRACK_IOU = 0.3


class Stages:
    """Seconds spent per pipeline stage."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)

    @contextlib.contextmanager
    def time(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def report(self, frames: int, names: Sequence[str] = STAGES) -> dict:
        """Stage -> {seconds, frames_per_second}: what one stage alone would sustain."""
        return {
            name: {
                "seconds": round(self.seconds[name], 3),
                "frames_per_second": round(frames / self.seconds[name], 1) if self.seconds[name] else None,
            }
            for name in names
        }


@dataclasses.dataclass
class Target:
    """One output frame's background and where its face is (transform None: no face found)."""

    frame: np.ndarray  # uint8 (H, W, 3)
    transform: np.ndarray | None = None  # 2 x 3, frame -> aligned crop
    landmarks_crop: np.ndarray | None = None  # (68, 2) in crop pixels


# --- Faces -----------------------------------------------------------------------------------


def choose_face(faces, path, face_index: int | None = None):
    """The photo's subject: the ``face_index``-th from the left, else the largest.

    Two faces of similar size and no ``face_index`` is an error: guessing
    would animate the wrong person.
    """
    from keras_s2v.data.face import NoFaceError, largest_face

    if not faces:
        raise NoFaceError(path)
    ordered = sorted(faces, key=lambda f: f.box[0])
    if face_index is not None:
        if not 0 <= face_index < len(ordered):
            raise ValueError(f"{path}: --face_index {face_index} but {len(ordered)} face(s) found (0 is the leftmost)")
        return ordered[face_index]
    largest = largest_face(faces)
    similar = [f for f in faces if _area(f) >= SIMILAR_FACE_AREA * _area(largest)]
    if len(similar) > 1:
        where = ", ".join(f"{i}: x={int(f.box[0])}..{int(f.box[2])}" for i, f in enumerate(ordered))
        raise ValueError(
            f"{path}: {len(faces)} faces found ({where}); choose one with --face_index N (0 is the leftmost)"
        )
    return largest


def _area(face) -> float:
    return (face.box[2] - face.box[0]) * (face.box[3] - face.box[1])


def align_photo(path, analyzer=None, face_index: int | None = None, size: int = IMAGE_SIZE):
    """(aligned face uint8 (size, size, 3), source image, 2 x 3 transform, landmarks in crop pixels)."""
    from keras_s2v.data.face import FaceAnalyzer, align

    image = media.read_image(path)
    analyzer = analyzer or FaceAnalyzer()
    face = choose_face(analyzer.analyze(image), path, face_index)
    crop, landmarks_crop, transform = align.align_face(image, face.landmarks, size)
    return crop, image, transform, landmarks_crop


class FaceFollower:
    """The same face from frame to frame, as a ``Target`` per frame (``push``, then ``flush`` at the end).

    ``track`` (the default): a ``tracking.LandmarkTracker`` (the landmarks
    refitted from the last frame's, the face detected again every
    ``redetect_every`` frames and whenever the refit loses it) and a
    ``tracking.TrackSmoother`` (each frame's alignment and landmark shape a
    local quadratic fit over the ``smooth_ahead`` frames either side: the
    pasted mouth no longer shakes, and it does not lag a moving head); the
    targets then come ``smooth_ahead`` frames late. Without: the face
    detected on every frame, the detection overlapping the last one most,
    else the largest, each frame's own landmarks as they are.
    """

    def __init__(
        self, analyzer, size: int = IMAGE_SIZE, track: bool = True, redetect_every: int = 10, smooth_ahead: int = 3
    ):
        from keras_s2v.data.face import tracking

        self.analyzer = analyzer
        self.size = size
        self.box = None
        self.tracker = tracking.LandmarkTracker(analyzer, redetect_every) if track else None
        self.smoother = tracking.TrackSmoother(smooth_ahead) if track and smooth_ahead else None
        self._previous = None  # the last frame's smoothed values (for the angle's continuity)

    def reset(self) -> list[Target]:
        """Forget the face (a cut: the video starts over); returns the targets still held back."""
        held = self.flush()
        self.box, self._previous = None, None
        if self.tracker is not None:
            self.tracker.reset()
        return held

    def push(self, frame: np.ndarray) -> list[Target]:
        """Follow the face into ``frame``; the targets now ready, in order (none yet while smoothing looks ahead)."""
        from keras_s2v.data.face import align, tracking

        face = self.tracker.update(frame) if self.tracker is not None else self._detect(frame)
        if face is None:
            self._previous = None
            if self.smoother is None:
                return [Target(frame)]
            return self._targets(self.smoother.push(frame, None))
        transform = align.alignment_transform(face.landmarks, self.size)
        landmarks_crop = align.apply_transform(transform, face.landmarks)
        if self.smoother is None:
            return [Target(frame, transform, landmarks_crop)]
        new_track = self.tracker.new_track
        values = tracking.face_values(transform, landmarks_crop, self.size, None if new_track else self._previous)
        self._previous = values
        return self._targets(self.smoother.push(frame, values, new_track))

    def flush(self) -> list[Target]:
        """The targets held back for smoothing (at the end of the video)."""
        return self._targets(self.smoother.flush()) if self.smoother is not None else []

    def target(self, frame: np.ndarray) -> Target:
        """One frame's target at once (no look-ahead: smoothing sees this frame alone)."""
        (target,) = self.push(frame) + self.flush()
        return target

    def _targets(self, ready) -> list[Target]:
        from keras_s2v.data.face import tracking

        targets = []
        for frame, values in ready:
            if values is None:
                targets.append(Target(frame))
            else:
                targets.append(Target(frame, *tracking.face_from_values(values, self.size)))
        return targets

    def _detect(self, frame: np.ndarray):
        from keras_s2v.data import tracks
        from keras_s2v.data.face import largest_face

        faces = self.analyzer.analyze(frame)
        if not faces:
            self.box = None
            return None
        face = largest_face(faces)
        if self.box is not None:
            overlap, best = max((tracks.box_iou(self.box, f.box), i) for i, f in enumerate(faces))
            if overlap >= TRACK_IOU:
                face = faces[best]
        self.box = face.box
        return face


def video_identity_crops(path, info: media.MediaInfo, analyzer, count: int, size: int = IMAGE_SIZE) -> list[np.ndarray]:
    """``count`` aligned stills of the video's main face, spread in time (the paper's re-dubbing identity).

    Still ``i`` comes from time ``(i + 0.5) / count`` of the clip, or the
    nearest of a few frames around it that shows a face.
    """
    from keras_s2v.data.face import align, largest_face

    duration = max(info.duration, 1.0 / max(info.fps, 1.0))
    step = duration / (4 * count)
    centres = [(i + 0.5) * duration / count for i in range(count)]
    first_tries = dict(zip(centres, media.read_frames_at(path, centres, info)))  # in one pass where cheaper
    crops, tried, decoded = [], 0, 0
    for centre in centres:
        for offset in (0, 1, -1, 2, -2):
            seconds = centre + offset * step
            if not 0 <= seconds < duration:
                continue
            frame = first_tries[centre] if offset == 0 else media.read_frame_at(path, seconds, info)
            tried += 1
            decoded += frame is not None
            faces = analyzer.analyze(frame) if frame is not None else []
            if faces:
                crops.append(align.align_face(frame, largest_face(faces).landmarks, size)[0])
                break
    if not decoded:
        raise media.MediaError(
            path,
            f"no video frame could be decoded (tried {tried} times across its "
            f"{info.duration:.1f} s): the file may be corrupt",
        )
    if not crops:
        raise media.MediaError(path, f"no face found in any of {tried} frames sampled across its {info.duration:.1f} s")
    return [crops[i % len(crops)] for i in range(count)]


# --- The loop --------------------------------------------------------------------------------


def check_output(out, overwrite: bool, inputs=()) -> Path:
    """Refuse, before any work, an output that is an input, exists (without ``overwrite``) or cannot be written."""
    from keras_s2v import outputs

    return outputs.check_file(out, inputs=inputs, overwrite=overwrite)


def check_positive(**values) -> None:
    """Refuse a flag value that is not a positive finite number (``--fps nan``, ``--batch_size 0``), naming the flag."""
    for name, value in values.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"--{name} must be a positive number, got {value}")


def check_blend(blend: str) -> None:
    """Refuse an unknown ``--blend`` before any work, naming the ones there are."""
    if blend not in BLENDS:
        raise ValueError(f"--blend must be one of {', '.join(BLENDS)}, got {blend!r}")


def timed_audio(path, info, stages: Stages) -> Iterator[np.ndarray]:
    """The audio's chunks, decode time booked to ``decode``."""
    chunks = media.iter_audio(path, info=info)
    while True:
        with stages.time("decode"):
            chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk


def video_targets(path, info: media.MediaInfo, follower: FaceFollower, stages: Stages, loop: bool) -> Iterator[Target]:
    """Each frame of the video at its own rate with its face; from the start again if ``loop``."""
    while True:
        frames, count = media.iter_frames(path, fps=info.fps, info=info), 0
        while True:
            with stages.time("decode"):
                frame = next(frames, None)
            if frame is None:
                break
            count += 1
            with stages.time("detect"):
                ready = follower.push(frame)
            yield from ready
        with stages.time("detect"):
            ready = follower.reset()  # the frames held back for smoothing; the video may start over: a cut
        yield from ready
        if not loop or count == 0:
            return


class Pipeline:
    """Stages in threads joined by bounded queues, items kept in order; the first error stops them all.

    ``source`` runs an iterable in a thread, ``map`` a function of each item
    (returning the items for the next stage) in another, ``results`` yields the
    last queue's items in the calling thread. Each stage is one thread, so
    every stage sees its items in the order the serial loop would, and a
    stage's state (the blender's placement, a streaming model's GRU states)
    is touched by one thread only. The work that matters releases the GIL
    (ffmpeg's pipes, OpenCV, LiteRT, TensorFlow), so the stages overlap on
    several cores. An exception in any stage stops the others (a stage
    blocked on a full or empty queue notices within ``POLL`` s) and is raised
    by ``results`` as it was, with its traceback; so is Ctrl-C in the caller
    after ``close``. Memory: at most ``maxsize`` items wait per queue, plus
    the one each stage holds.
    """

    POLL = 0.05

    def __init__(self):
        import threading

        self._stop = threading.Event()
        self._threads = []
        self.error: BaseException | None = None

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._stop.set()

    def _put(self, channel, item) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                channel.put(item, timeout=self.POLL)
                return True
            except queue.Full:
                pass
        return False

    def _get(self, channel):
        import queue

        while not self._stop.is_set():
            try:
                return channel.get(timeout=self.POLL)
            except queue.Empty:
                pass
        return _STOPPED

    def _start(self, name: str, body, maxsize: int):
        import queue
        import threading

        channel = queue.Queue(maxsize)

        def run():
            try:
                body(channel)
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread by results()
                self._fail(error)

        thread = threading.Thread(target=run, name=f"keras_s2v-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return channel

    def source(self, name: str, items: Iterable, maxsize: int):
        """A queue of ``items``, produced by a thread of its own."""

        def body(channel):
            iterator = iter(items)
            try:
                for item in iterator:
                    if not self._put(channel, item):
                        return
                self._put(channel, _DONE)
            finally:
                close = getattr(iterator, "close", None)  # a generator's files and ffmpeg processes
                if close is not None:
                    close()

        return self._start(name, body, maxsize)

    def map(self, name: str, upstream, function, maxsize: int):
        """A queue of ``function(item)``'s outputs (an iterable each) for every item of ``upstream``."""

        def body(channel):
            while (item := self._get(upstream)) is not _STOPPED and item is not _DONE:
                for output in function(item):
                    if not self._put(channel, output):
                        return
            if item is _DONE:
                self._put(channel, _DONE)

        return self._start(name, body, maxsize)

    def results(self, channel) -> Iterator:
        """The items of ``channel`` in this thread; the first error of any stage raised here."""
        while True:
            item = self._get(channel)
            if self.error is not None:
                raise self.error
            if item is _DONE:
                return
            if item is _STOPPED:
                raise RuntimeError("pipeline stopped")
            yield item

    def close(self, timeout: float = 10.0) -> None:
        """Stop every stage and wait for its thread (each finishes the call it is in)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)


_DONE, _STOPPED = object(), object()
PIPELINE_BATCHES = 1  # generator batches waiting between the reading, generating and blending threads


class FrameRenderer:
    """The middle of every command: batches of (target, window) pairs in, finished frames out, in order.

    ``generate`` runs the model on a batch (``identity``: the ``identity_features``
    outputs, or a function of a batch of targets giving one row per target, a
    ``masked_target`` model re-dubbing a video; then the generator and the
    deblurring CNN), ``paste`` blends each face back into its target's frame
    (or keeps the aligned crop, ``crop``; a target without a face passes
    through and is counted in ``without_face``). ``frames`` chains them.
    """

    def __init__(self, backend, identity, stages: Stages, deblur=None, crop: bool = False, blend: str = DEFAULT_BLEND):
        from keras_s2v.paste import FaceBlender

        self.backend, self.identity, self.stages, self.deblur, self.crop = backend, identity, stages, deblur, crop
        self.blender = FaceBlender(blend)
        self.without_face = 0

    def generate(self, batch) -> list:
        batch_targets, batch_windows = zip(*batch)
        identity = self.identity
        if callable(identity):
            with self.stages.time("identity"):
                identity = identity(batch_targets)
        with self.stages.time("generate"):
            faces = np.asarray(self.backend.generate_frame_pcm(identity, np.stack(batch_windows)))
        if self.deblur is not None:
            with self.stages.time("deblur"):
                faces = self.deblur(faces)
        return [(batch_targets, frame_loop.to_uint8(faces))]

    def paste(self, item) -> list[np.ndarray]:
        frames = []
        for target, face in zip(*item):
            if self.crop:
                frame = face
            elif target.transform is None:
                frame, self.without_face = target.frame, self.without_face + 1
            else:
                with self.stages.time("blend"):
                    frame = self.blender.paste(target.frame, face, target.transform, target.landmarks_crop)
            frames.append(frame)
        return frames

    def frames(
        self, batches: Iterable[list], threads: bool = True, queue_frames: int = 25, close_timeout: float = 10.0
    ) -> Iterator[np.ndarray]:
        """Every batch's frames, in order, as each is finished; ``batches`` is drawn from as the work needs it.

        ``threads``: the stages overlap in a ``Pipeline``: reading (drawing the
        batches: decode, the face, the audio), generating, blending, and the
        caller's thread; at most one batch waits between the first three and
        ``queue_frames`` frames before the caller. False: one after the other in
        the caller's thread. Close the iterator (``contextlib.closing``) to stop
        the threads when the caller stops early; each is waited for up to
        ``close_timeout`` s (``Pipeline.close``).
        """
        if not threads:
            for batch in batches:
                for item in self.generate(batch):
                    yield from self.paste(item)
            return
        pipeline = Pipeline()
        try:
            read = pipeline.source("read", batches, PIPELINE_BATCHES)
            generated = pipeline.map("generate", read, self.generate, PIPELINE_BATCHES)
            yield from pipeline.results(pipeline.map("blend", generated, self.paste, queue_frames))
        finally:
            pipeline.close(close_timeout)


def render(
    backend,
    identity,
    targets: Iterable[Target],
    windows: Iterable[np.ndarray],
    out,
    fps: float,
    audio,
    stages: Stages,
    deblur=None,
    crop: bool = False,
    overwrite: bool = False,
    batch_size: int = 25,
    total: int | None = None,
    progress: bool = True,
    blend: str = DEFAULT_BLEND,
    threads: bool = True,
) -> dict:
    """Generate one face per (target, window) pair and write the video; returns counts.

    ``identity``: the ``identity_features`` outputs, or a function of a batch of
    targets giving them one row per target (a ``masked_target`` model re-dubbing
    a video). Ends when either iterable does: that sets the output's length, and
    the muxed ``audio`` (a file) is cut or padded with silence to it.

    ``threads`` (the default): the stages overlap (``FrameRenderer.frames``): reading
    (decode and the face), generating (identity, generator, deblur), blending, and
    encoding in this thread (ffmpeg encodes in its own process); the frames are
    the serial loop's, in the same order. False: one after the other in this thread.
    Stage times are each stage's own busy time either way.
    """
    from tqdm import tqdm

    renderer = FrameRenderer(backend, identity, stages, deblur, crop, blend)
    pairs = zip(targets, windows)
    first = next(pairs, None)
    if first is None:
        raise ValueError("nothing to generate: the audio or the video holds no frame")
    height, width = (IMAGE_SIZE, IMAGE_SIZE) if crop else first[0].frame.shape[:2]
    batches = frame_loop.batched(itertools.chain([first], pairs), batch_size)
    bar = tqdm(total=total, unit="frame", disable=not progress, dynamic_ncols=True)
    with contextlib.closing(renderer.frames(batches, threads, batch_size)) as frames:
        with media.VideoWriter(out, width, height, fps, audio=audio, overwrite=overwrite) as writer:
            for frame in frames:
                with stages.time("encode"):
                    writer.write(frame)
                bar.update(1)
            finishing = time.perf_counter()
    stages.seconds["encode"] += time.perf_counter() - finishing  # ffmpeg finishing the file
    bar.close()
    return {
        "frames": writer.frames_written,
        "frames_without_face": renderer.without_face,
        "width": width,
        "height": height,
    }


def frame_identity(backend, references: np.ndarray):
    """Re-dubbing's identity: the reference faces' outputs once, or for a ``masked_target`` model a
    function of a batch of targets, each frame's aligned face before the references (a frame
    without a face: the first reference; its output is not used)."""
    from keras_s2v.data.face import align

    if not getattr(backend, "masked_target", False):
        return backend.identity_features(references)

    def per_frame(targets: Sequence[Target]) -> dict[str, np.ndarray]:
        size = references.shape[1]
        crops = [
            references[0, ..., :3] if t.transform is None else align.warp_face(t.frame, t.transform, size)
            for t in targets
        ]
        return backend.identity_features(frame_loop.identity_faces(backend, references, np.stack(crops)))

    return per_frame


def _load(model, deblur, no_deblur: bool):
    """(generator backend, deblur or None, deblur description)."""
    from keras_s2v import backends

    backend = backends.load_generator(model)
    if no_deblur:
        return backend, None, "off (--no_deblur)"
    path = deblur if deblur is not None else backends.find_deblur(model)
    if path is None:
        return backend, None, "none found (train one into <workdir>/deblur, or pass --deblur WORKDIR)"
    return backend, backends.load_deblur(path), f"keras {path}"


def _summary(result: dict, stages: Stages, started: float, **extra) -> dict:
    seconds = time.perf_counter() - started
    return {
        **result,
        **extra,
        "seconds": round(seconds, 3),
        "frames_per_second": round(result["frames"] / seconds, 2) if seconds else None,
        "stages": stages.report(result["frames"]),
    }


def photo_identity(backend, face_paths, stages: Stages, analyzer=None, face_index: int | None = None):
    """(identity outputs, the first photo's ``Target``): every photo's face found and aligned, the identity once
    (a photo is its own target, also for a ``masked_target`` model)."""
    from keras_s2v.data.face import FaceAnalyzer

    if len(face_paths) != backend.num_identity_images:
        raise ValueError(
            f"the model needs {backend.num_identity_images} face photo(s) (--face PHOTO, repeated), "
            f"got {len(face_paths)}"
        )
    analyzer = analyzer or FaceAnalyzer()
    with stages.time("detect"):
        aligned = [align_photo(path, analyzer, face_index) for path in face_paths]
    with stages.time("identity"):
        faces = frame_loop.face_input([a[0] for a in aligned])
        identity = backend.identity_features(frame_loop.identity_faces(backend, faces))
    _, image, transform, landmarks_crop = aligned[0]
    image.setflags(write=False)  # every frame's background: the blender keeps what it derives from it
    return identity, Target(image, transform, landmarks_crop)


def generate_video(
    face_paths,
    audio_path,
    model,
    out,
    *,
    deblur=None,
    no_deblur: bool = False,
    fps: float = audio_lib.FPS,
    crop: bool = False,
    face_index: int | None = None,
    overwrite: bool = False,
    batch_size: int = 25,
    progress: bool = True,
    analyzer=None,
    blend: str = DEFAULT_BLEND,
    threads: bool = True,
) -> dict:
    """A talking-face video of the photo(s) speaking ``audio_path``; returns a summary.

    The first photo is the video's background; each photo gives one aligned
    identity face. Output length: the audio's, rounded up to a whole frame.
    ``threads``: overlap the stages (``render``); False runs them one after another.
    """
    started, stages = time.perf_counter(), Stages()
    inputs = [*(("--face", p) for p in face_paths), ("--audio", audio_path), ("--model", model), ("--deblur", deblur)]
    out = check_output(out, overwrite, inputs)
    if not face_paths:
        raise ValueError("give the face photo with --face PHOTO")
    check_positive(fps=fps, batch_size=batch_size)
    check_blend(blend)
    audio_info = media.probe(audio_path)
    if not audio_info.has_audio:
        raise media.MediaError(audio_path, "no audio stream")
    media.check_audio(audio_path, audio_info)  # a cut file or NaN samples, found before the model runs
    backend, deblurrer, deblur_note = _load(model, deblur, no_deblur)
    frame_loop.check_frame_rate(backend, fps, "--fps")
    identity, target = photo_identity(backend, face_paths, stages, analyzer, face_index)
    targets = itertools.repeat(target)
    windows = frame_loop.audio_windows(timed_audio(audio_path, audio_info, stages), fps, samples=backend.window_samples)
    total = audio_lib.num_frames(round(audio_info.duration * audio_lib.SAMPLE_RATE), fps)
    result = render(
        backend,
        identity,
        targets,
        windows,
        out,
        fps,
        str(audio_path),
        stages,
        deblurrer,
        crop,
        overwrite,
        batch_size,
        total,
        progress,
        blend,
        threads,
    )
    return _summary(
        result,
        stages,
        started,
        output=str(out),
        fps=fps,
        model=backend.description,
        deblur=deblur_note,
        blend=blend,
        audio_seconds=round(audio_info.duration, 3),
    )


def redub_video(
    video_path,
    audio_path,
    model,
    out,
    *,
    audio_fit: str = "loop",
    deblur=None,
    no_deblur: bool = False,
    crop: bool = False,
    overwrite: bool = False,
    batch_size: int = 25,
    progress: bool = True,
    analyzer=None,
    blend: str = DEFAULT_BLEND,
    track_faces: bool = True,
    threads: bool = True,
) -> dict:
    """``video_path`` re-dubbed with ``audio_path``, at its own resolution and frame rate; returns a summary.

    audio_fit, when the lengths differ:
      ``loop``  the output is as long as the audio: the video starts over, or is cut;
      ``trim``  as long as the shorter of the two;
      ``pad``   as long as the video: the audio is padded with silence (closed mouth), or cut.
    track_faces: follow the face with ``FaceFollower``'s tracker (landmarks refitted from frame to frame,
    detected again every 10 frames or when lost, smoothed); False detects it on every frame.
    threads: overlap decoding, the face, generating, blending and encoding (``render``); False: one after another.
    """
    from keras_s2v.data.face import FaceAnalyzer

    started, stages = time.perf_counter(), Stages()
    inputs = [("--video", video_path), ("--audio", audio_path), ("--model", model), ("--deblur", deblur)]
    out = check_output(out, overwrite, inputs)
    check_positive(batch_size=batch_size)
    check_blend(blend)
    if audio_fit not in AUDIO_FITS:
        raise ValueError(f"--audio_fit must be one of {', '.join(AUDIO_FITS)}, got {audio_fit!r}")
    video_info = media.probe(video_path)
    if not video_info.has_video or video_info.is_still_image:
        raise media.MediaError(video_path, "no video stream (for a photo use python -m keras_s2v.generate)")
    audio_info = media.probe(audio_path)
    if not audio_info.has_audio:
        raise media.MediaError(audio_path, "no audio stream")
    media.check_packets(video_path)  # a cut mp4, found before the model runs (others when their frames run out)
    media.check_audio(audio_path, audio_info)
    fps = video_info.fps if video_info.fps > 0 else float(audio_lib.FPS)
    backend, deblurrer, deblur_note = _load(model, deblur, no_deblur)
    frame_loop.check_frame_rate(backend, fps, f"{video_path}: the video")
    analyzer = analyzer or FaceAnalyzer()
    with stages.time("detect"):
        stills = video_identity_crops(video_path, video_info, analyzer, backend.num_identity_images)
    with stages.time("identity"):
        identity = frame_identity(backend, frame_loop.face_input(stills))
    follower = FaceFollower(analyzer, track=track_faces)
    targets = video_targets(video_path, video_info, follower, stages, loop=audio_fit == "loop")
    windows = frame_loop.audio_windows(
        timed_audio(audio_path, audio_info, stages),
        fps,
        then_silence=audio_fit == "pad",
        samples=backend.window_samples,
    )
    audio_frames = audio_lib.num_frames(round(audio_info.duration * audio_lib.SAMPLE_RATE), fps)
    video_frames = round(video_info.duration * fps)
    total = {"loop": audio_frames, "trim": min(audio_frames, video_frames), "pad": video_frames}[audio_fit]
    result = render(
        backend,
        identity,
        targets,
        windows,
        out,
        fps,
        str(audio_path),
        stages,
        deblurrer,
        crop,
        overwrite,
        batch_size,
        total,
        progress,
        blend,
        threads,
    )
    return _summary(
        result,
        stages,
        started,
        output=str(out),
        fps=round(fps, 3),
        model=backend.description,
        deblur=deblur_note,
        blend=blend,
        faces=_faces_note(follower),
        audio_fit=audio_fit,
        audio_seconds=round(audio_info.duration, 3),
        video_seconds=round(video_info.duration, 3),
    )


def _faces_note(follower: FaceFollower) -> str:
    if follower.tracker is None:
        return "detected on every frame"
    stats = follower.tracker.stats
    return (
        f"tracked, detected on {stats.detections} of {stats.frames} frames "
        f"({stats.scheduled} scheduled, {stats.lost} when the track was lost)"
    )


def format_summary(summary: dict) -> str:
    """The closing lines a command prints."""
    lines = [
        (
            f"wrote {summary['output']}: {summary['frames']} frames, {summary['width']}x{summary['height']} at "
            f"{summary['fps']:g} fps, {summary['frames_per_second']:.1f} frames/s end to end "
            f"({summary['seconds']:.1f} s)"
        )
    ]
    if summary.get("frames_without_face"):
        lines.append(f"{summary['frames_without_face']} frame(s) without a face passed through unchanged")
    blend = f"; blend: {summary['blend']}" if summary.get("blend") else ""
    lines.append(f"model: {summary['model']}; deblur: {summary['deblur']}{blend}")
    if summary.get("faces"):
        lines.append(f"faces: {summary['faces']}")
    busy = {k: v for k, v in summary["stages"].items() if v["seconds"]}
    lines.append("stages: " + ", ".join(f"{k} {v['seconds']:.1f} s" for k, v in busy.items()))
    return "\n".join(lines)


# --- A live stream ---------------------------------------------------------------------------


def stream_photo(
    face_paths,
    pcm,
    model,
    write,
    *,
    pcm_name: str = "standard input",
    deblur=None,
    no_deblur: bool = False,
    fps: float = audio_lib.FPS,
    crop: bool = False,
    face_index: int | None = None,
    batch_size: int = 1,
    analyzer=None,
    blend: str = DEFAULT_BLEND,
    threads: bool = True,
    ready=None,
) -> dict:
    """The photo(s) speaking the raw PCM arriving on ``pcm``: each frame handed to ``write`` as soon as it can be made.

    ``pcm``: a binary stream (standard input, a pipe) of 16 kHz mono s16le PCM
    (``frame_loop.read_pcm``), read until it ends. The face is found and its
    identity computed once, before the first read; then ``ready(info)`` is
    called (``width``, ``height``, ``fps``, ``frames_ahead``: frame ``t`` is
    made once the audio through frame ``t + frames_ahead`` has arrived,
    ``audio.frames_ahead``). Frames are what ``generate_video`` writes for the
    same audio (the photo with the lower face blended in, or the aligned crop
    with ``crop``), uint8 (H, W, 3), in order; ``write(frame)`` is called in
    this thread. ``batch_size`` caps the windows per generator call; a batch
    holds only windows that are ready, never waiting for more audio.
    Returns a summary (``first_frame_seconds``: from the first PCM read to the
    first frame handed over).
    """
    started, stages = time.perf_counter(), Stages()
    if not face_paths:
        raise ValueError("give the face photo with --face PHOTO")
    check_positive(fps=fps, batch_size=batch_size)
    check_blend(blend)
    backend, deblurrer, deblur_note = _load(model, deblur, no_deblur)
    frame_loop.check_frame_rate(backend, fps, "--fps")
    identity, target = photo_identity(backend, face_paths, stages, analyzer, face_index)
    height, width = (IMAGE_SIZE, IMAGE_SIZE) if crop else target.frame.shape[:2]
    ahead = audio_lib.frames_ahead(fps, backend.window_samples)
    if ready is not None:
        ready({"width": width, "height": height, "fps": fps, "frames_ahead": ahead, "model": backend.description})
    clock = {"first_read": None, "setup": time.perf_counter() - started}

    def chunks():
        for chunk in frame_loop.read_pcm(pcm, pcm_name, batch_size * audio_lib.SAMPLES_PER_FRAME):
            if clock["first_read"] is None:
                clock["first_read"] = time.perf_counter()
            yield chunk

    batches = (
        [(target, window) for window in batch]
        for batch in frame_loop.window_batches(chunks(), batch_size, fps, backend.window_samples)
    )
    renderer = FrameRenderer(backend, identity, stages, deblurrer, crop, blend)
    count, first_out = 0, None
    # Stopped early (an error, Ctrl-C), the reading thread may be waiting for audio that never comes: it is left
    # to wait (a daemon thread) rather than waited for.
    with contextlib.closing(renderer.frames(batches, threads, batch_size, close_timeout=1.0)) as frames:
        for frame in frames:
            with stages.time("write"):
                write(frame)
            count += 1
            first_out = first_out or time.perf_counter()
    if not count:
        raise ValueError(
            f"{pcm_name}: no audio arrived (raw 16-bit PCM, s16le, mono, {audio_lib.SAMPLE_RATE} Hz; "
            f"e.g. ffmpeg -i SPEECH -f s16le -ac 1 -ar {audio_lib.SAMPLE_RATE} -)"
        )
    ended = time.perf_counter()
    return {
        "frames": count,
        "width": width,
        "height": height,
        "fps": fps,
        "frames_ahead": ahead,
        "model": backend.description,
        "deblur": deblur_note,
        "blend": blend,
        "setup_seconds": round(clock["setup"], 3),
        "first_frame_seconds": round(first_out - clock["first_read"], 3),
        "seconds": round(ended - clock["first_read"], 3),
        "frames_per_second": round(count / max(ended - clock["first_read"], 1e-9), 2),
        "stages": stages.report(count, STREAM_STAGES),
    }


def format_stream_summary(summary: dict) -> str:
    """The closing lines ``python -m keras_s2v.stream`` prints (on standard error: the frames hold standard output)."""
    busy = {k: v for k, v in summary["stages"].items() if v["seconds"]}
    return "\n".join(
        [
            f"streamed {summary['frames']} frames, {summary['width']}x{summary['height']} rgb24 at {summary['fps']:g} "
            f"fps: the first {summary['first_frame_seconds']:.3f} s after the first audio was read, "
            f"{summary['frames_per_second']:.1f} frames/s from then to the end ({summary['seconds']:.1f} s; "
            f"setup {summary['setup_seconds']:.1f} s before it)",
            f"model: {summary['model']}; deblur: {summary['deblur']}; blend: {summary['blend']}",
            "stages: " + ", ".join(f"{k} {v['seconds']:.1f} s" for k, v in busy.items()),
        ]
    )
