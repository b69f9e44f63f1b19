"""Reading and writing media through ffmpeg, with errors that name the file.

ffmpeg handles every container and codec (HEVC, variable frame rate, rotated
phone video): frames come out at a constant rate, upright, as RGB uint8, and
audio as 16 kHz mono float32. Argument lists only, never a shell string.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from keras_s2v import outputs
from keras_s2v.data import audio as audio_lib

# A stream that decodes shorter than its container declares, by more than this, is truncated or
# damaged: AAC priming, encoder padding and resampling a variable frame rate stay far below it
# (0.05 s at most over the 83 real files of shared/media).
SHORTFALL_SECONDS = 0.5
SHORTFALL_SHARE = 0.01  # of the declared length, for long files
MAX_IMAGE_PIXELS = 100_000_000  # 300 MB as RGB; every phone photo but the 200-megapixel modes


class MediaError(Exception):
    """A media file that cannot be used, with the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _file(path) -> str:
    """``path`` as an ffmpeg argument that is always a file: ``take1:final.wav`` is no protocol."""
    return f"file:{path}"


def require_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found on PATH: install it (`make install` does, on Debian)")
    return found


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    path: str
    width: int  # upright, after rotation
    height: int
    fps: float  # average frame rate of the source
    duration: float  # seconds
    has_video: bool
    has_audio: bool
    rotation: int
    video_codec: str | None
    container: str = ""  # ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    # Seconds the container declares for the streams ffmpeg decodes, to tell a truncated file from a
    # short one; None when it declares nothing (a file written to a pipe) or only estimates.
    audio_duration: float | None = None
    video_duration: float | None = None

    @property
    def is_still_image(self) -> bool:
        """A photo (JPEG, PNG, ...) that ffmpeg opens as a one-frame video."""
        return self.container == "image2" or self.container.endswith("_pipe")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _declared_seconds(stream: dict | None) -> float | None:
    """The length the container declares for ``stream``: a field in most containers, a tag in Matroska."""
    if stream is None:
        return None
    try:
        if "duration" in stream:
            return float(stream["duration"])
        hours, minutes, seconds = stream.get("tags", {}).get("DURATION", "").split(":")  # "00:01:02.500000000"
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _wav_declared_seconds(path) -> float | None:
    """Seconds of PCM a wav's ``data`` chunk declares, or None.

    ffprobe takes the wav's length from the file's size, so a cut file looks
    whole to it; the header still says how much was written.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        byte_rate = None
        while len(header := f.read(8)) == 8:
            kind, size = struct.unpack("<4sI", header)
            if kind == b"fmt ":
                fmt = f.read(size + size % 2)
                if len(fmt) < 16 or struct.unpack("<H", fmt[:2])[0] not in (1, 3, 6, 7, 0xFFFE):
                    return None  # compressed in a wav: its byte rate is only an average
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
            elif kind == b"data":
                # 0 and 0xFFFFFFFF: written to a pipe, the length never filled in.
                return size / byte_rate if byte_rate and size not in (0, 0xFFFFFFFF) else None
            else:
                f.seek(size + size % 2, os.SEEK_CUR)
    return None


def probe(path) -> MediaInfo:
    """Streams of a media file, or ``MediaError`` saying why it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file not found")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a media file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    cmd = [require_tool("ffprobe"), "-v", "warning", "-show_streams", "-show_format", "-of", "json", _file(path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise MediaError(path, f"not a media file ffmpeg can read ({_last_line(result.stderr)})")
    info = json.loads(result.stdout or "{}")
    streams = info.get("streams", [])
    # Cover art in audio files shows up as a one-frame video stream.
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    has_audio = audio is not None
    duration = float(info.get("format", {}).get("duration") or 0.0)
    container = info.get("format", {}).get("format_name", "")
    declared = {"audio_duration": _declared_seconds(audio), "video_duration": _declared_seconds(video)}
    if "Estimating duration from bitrate" in result.stderr:  # raw AAC, an mp3 without its VBR header: a guess
        declared = {}
    if container == "wav" and has_audio:
        declared["audio_duration"] = _wav_declared_seconds(path)
    if video is None:
        return MediaInfo(str(path), 0, 0, 0.0, duration, False, has_audio, 0, None, container, **declared)
    rotation = 0
    for side in video.get("side_data_list", []) or []:
        if "rotation" in side:
            rotation = int(round(float(side["rotation"])))
    if "rotate" in video.get("tags", {}):
        rotation = int(video["tags"]["rotate"])
    width, height = int(video.get("width", 0)), int(video.get("height", 0))
    if rotation % 180 != 0:
        width, height = height, width
    num, _, den = (video.get("avg_frame_rate") or "0/1").partition("/")
    fps = float(num) / float(den) if float(den or 0) else 0.0
    return MediaInfo(
        str(path),
        width,
        height,
        fps,
        duration,
        True,
        has_audio,
        rotation,
        video.get("codec_name"),
        container,
        **declared,
    )


def _said(errors) -> str:
    """ffmpeg's last line in the ``errors`` file, or ""."""
    errors.seek(0)
    text = errors.read().decode(errors="replace")
    # Without ffmpeg's "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d5fca26b00] " prefix.
    return re.sub(r"^\[[^]]* @ 0x[0-9a-f]+\] ", "", _last_line(text)) if text.strip() else ""


def _check_length(path, kind: str, decoded: float, declared: float | None, said: str) -> None:
    """``MediaError`` when ``kind`` decoded materially shorter than the file declares: a cut file."""
    if declared is None or declared - decoded <= max(SHORTFALL_SECONDS, SHORTFALL_SHARE * declared):
        return
    raise MediaError(
        path,
        f"truncated or damaged: the {kind} decodes to {decoded:.2f} s of the {declared:.2f} s "
        f"the file declares{f' (ffmpeg: {said})' if said else ''}; if the shorter {kind} is "
        "right, re-encode the file (ffmpeg -i FILE NEW_FILE)",
    )


def _decode_audio(
    path, info: MediaInfo | None, chunk_samples: int, sample_rate: int, sample_format: str
) -> Iterator[np.ndarray]:
    """The first audio track as float32 mono chunks, decoded by ffmpeg to ``sample_format`` (s16le or f32le).

    ffmpeg exits 0 on a truncated file (it says "partial file" and stops), so
    the samples are counted and compared with what the container declares.
    """
    info = info or probe(path)
    if not info.has_audio:
        raise MediaError(path, "no audio stream")
    cmd = [
        require_tool("ffmpeg"),
        "-v",
        "error",
        "-nostdin",
        "-i",
        _file(path),
        "-map",
        "0:a:0",
        "-ac",
        "1",
        "-ar",
        str(sample_rate),
        "-f",
        sample_format,
        "-",
    ]
    dtype = np.dtype(np.int16 if sample_format == "s16le" else np.float32)
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
        total = 0
        try:
            while True:
                buf = proc.stdout.read(chunk_samples * dtype.itemsize)
                chunk = audio_lib.to_float(np.frombuffer(buf[: len(buf) // dtype.itemsize * dtype.itemsize], dtype))
                bad = np.flatnonzero(~np.isfinite(chunk)) if dtype == np.float32 else ()
                if len(bad):  # the AAC encoder refuses them, after the whole video is made
                    raise MediaError(
                        path,
                        "the audio holds samples that are not a number (NaN) or infinite, the "
                        f"first at {(total + bad[0]) / sample_rate:.2f} s",
                    )
                if chunk.size:
                    total += chunk.size
                    yield chunk
                if len(buf) < chunk_samples * dtype.itemsize:
                    break
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
        said = _said(errors)
    if code != 0:
        raise MediaError(path, f"audio could not be decoded ({said or 'unknown error'})")
    if total == 0:
        raise MediaError(path, "audio stream decodes to no samples")
    _check_length(path, "audio", total / sample_rate, info.audio_duration, said)


def iter_audio(
    path,
    chunk_samples: int = 10 * audio_lib.SAMPLE_RATE,
    sample_rate: int = audio_lib.SAMPLE_RATE,
    info: MediaInfo | None = None,
) -> Iterator[np.ndarray]:
    """Yield the audio track as float32 mono chunks of ``chunk_samples`` at ``sample_rate``.

    Any format ffmpeg reads, resampled and downmixed by ffmpeg to 16 bits,
    streamed through a pipe: memory does not grow with the recording's
    length. Raises ``MediaError`` when there is no audio, when nothing
    decodes, or when ffmpeg fails or stops short of the length the file
    declares (a truncated output is worse than none), the last two once the
    chunks before have been yielded. NaN samples come out as full-scale
    clicks at 16 bits: ``check_audio`` finds them.
    """
    return _decode_audio(path, info, chunk_samples, sample_rate, "s16le")


def check_audio(path, info: MediaInfo | None = None) -> float:
    """Decode the whole audio track once, keeping nothing: its seconds, or ``MediaError``.

    What ``iter_audio`` would raise, and NaN or infinite samples (decoded as
    floats here), found in about 2 s per 10 minutes of audio (2 busy cores),
    before a model spends minutes on the file.
    """
    total = 0
    for chunk in _decode_audio(path, info, 60 * audio_lib.SAMPLE_RATE, audio_lib.SAMPLE_RATE, "f32le"):
        total += chunk.size
    return total / audio_lib.SAMPLE_RATE


def check_packets(path) -> None:
    """``MediaError`` when a stream holds materially fewer packets than its container's index declares.

    Finds a cut mp4 or mov (what phones write; their index counts the frames)
    without decoding: ffprobe only reads the packets, 0.6 s for a 26-minute,
    117 MB mp4. Containers that declare no count (Matroska, MPEG-TS) pass
    here; decoding them checks their length at the end.
    """
    cmd = [
        require_tool("ffprobe"),
        "-v",
        "error",
        "-count_packets",
        "-of",
        "json",
        "-show_entries",
        "stream=codec_type,nb_frames,nb_read_packets,duration:stream_disposition=attached_pic",
        _file(path),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise MediaError(path, f"not a media file ffmpeg can read ({_last_line(result.stderr)})")
    for stream in json.loads(result.stdout or "{}").get("streams", []):
        kind = stream.get("codec_type")
        if kind not in ("audio", "video") or stream.get("disposition", {}).get("attached_pic"):
            continue
        try:
            declared, read = int(stream["nb_frames"]), int(stream["nb_read_packets"])
            seconds = float(stream["duration"])
        except (KeyError, ValueError):
            continue
        if declared > 0 and (declared - read) / declared * seconds > max(SHORTFALL_SECONDS, SHORTFALL_SHARE * seconds):
            raise MediaError(
                path,
                f"truncated or damaged: the {kind} holds {read} frames of the {declared} its "
                f"container declares ({read / declared * seconds:.2f} s of {seconds:.2f} s)",
            )


def read_audio(path, sample_rate: int = audio_lib.SAMPLE_RATE) -> np.ndarray:
    """Whole audio track as float32 mono at ``sample_rate`` (any format ffmpeg reads)."""
    return np.concatenate(list(iter_audio(path, sample_rate=sample_rate)))


def output_size(info: MediaInfo, max_side: int | None) -> tuple[int, int]:
    """(width, height) that ``iter_frames`` yields: upright, at most ``max_side``."""
    width, height = info.width, info.height
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
    return width, height


def _rgb24_command(path, options: list[str], seek: float | None = None) -> list[str]:
    """ffmpeg decoding the first video stream, upright, to raw RGB on its standard output; ``options`` before the
    output (filters, a frame count), ``seek`` seconds before the input."""
    start = [] if seek is None else ["-ss", f"{max(seek, 0.0):.3f}"]
    command = [require_tool("ffmpeg"), "-v", "error", "-nostdin", *start, "-i", _file(path), "-map", "0:V:0"]
    return [*command, *options, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]


def iter_frames(
    path, fps: float = audio_lib.FPS, max_side: int | None = None, info: MediaInfo | None = None
) -> Iterator[np.ndarray]:
    """Yield upright RGB uint8 frames resampled to a constant ``fps``.

    Streams through a pipe, so memory does not grow with the video's length.
    A stream with no frame raises ``MediaError``, and so does one that ends
    materially before the length the file declares (a truncated file), once
    the frames it holds have been yielded.
    """
    info = info or probe(path)
    if not info.has_video:
        raise MediaError(path, "no video stream")
    width, height = output_size(info, max_side)
    cmd = _rgb24_command(path, ["-vf", f"fps={fps},scale={width}:{height}:flags=area"])
    frame_bytes = width * height * 3
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
        count = 0
        try:
            while True:
                buf = proc.stdout.read(frame_bytes)
                if len(buf) < frame_bytes:
                    break
                count += 1
                yield np.frombuffer(buf, np.uint8).reshape(height, width, 3)
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        said = _said(errors)
    if count == 0:
        raise MediaError(path, f"no video frame could be decoded ({said or 'unknown error'})")
    if not info.is_still_image:
        _check_length(path, "video", count / fps, info.video_duration, said)


def read_frame_at(path, seconds: float, info: MediaInfo | None = None) -> np.ndarray | None:
    """The upright RGB frame shown at ``seconds`` (ffmpeg seeks), or None past the end."""
    info = info or probe(path)
    if not info.has_video:
        raise MediaError(path, "no video stream")
    cmd = _rgb24_command(path, ["-frames:v", "1"], seek=seconds)
    result = subprocess.run(cmd, capture_output=True, check=False)
    frame_bytes = info.width * info.height * 3
    if result.returncode != 0 or len(result.stdout) < frame_bytes:
        return None
    return np.frombuffer(result.stdout[:frame_bytes], np.uint8).reshape(info.height, info.width, 3)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a PNG or JPEG header declares, read without decoding; None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] != b"\xff\xd8":
        return None
    at = 2  # JPEG: walk the segments (EXIF, ICC profile, ...) to the first start of frame
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            at += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        else:
            at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    return None


def read_image(path) -> np.ndarray:
    """An image file as RGB uint8, or ``MediaError`` naming the file.

    One over ``MAX_IMAGE_PIXELS`` is refused from its header, before a
    decoder allocates it (a 2.4 MB PNG can declare 50000 x 50000 pixels).
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found")
    data = np.fromfile(str(path), np.uint8)
    size = image_size(data[: 1 << 20].tobytes())  # a JPEG's frame header comes after its EXIF, within 1 MiB
    if size and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise MediaError(
            path,
            f"image too large: {size[0]} x {size[1]} pixels ({size[0] * size[1] / 1e6:.0f} "
            f"megapixels, the limit is {MAX_IMAGE_PIXELS / 1e6:.0f}); scale it down",
        )
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error as error:  # other formats: OpenCV refuses more than 2**30 pixels itself
        raise MediaError(path, f"not an image that can be read ({_last_line(str(error))})") from None
    if image is None:
        raise MediaError(path, "not an image that can be read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_wav(path, waveform: np.ndarray, sample_rate: int = audio_lib.SAMPLE_RATE) -> None:
    import soundfile

    soundfile.write(str(path), audio_lib.to_float(waveform), sample_rate, subtype="PCM_16")


# An ffmpeg start (about 0.07 s of CPU) costs as much as decoding this many pixels (``read_frames_at``'s choice).
START_PIXELS = 25e6


def keyframe_times(path, until: float | None = None) -> np.ndarray:
    """Seconds of the first video stream's keyframes (through ``until``), from its packets: nothing decoded."""
    cmd = [require_tool("ffprobe"), "-v", "error", "-select_streams", "V:0"]
    if until is not None:
        cmd += ["-read_intervals", f"%{until:.3f}"]
    cmd += ["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", _file(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    times = []
    for line in result.stdout.splitlines():
        pts, _, flags = line.partition(",")
        if "K" in flags:
            with contextlib.suppress(ValueError):
                times.append(float(pts))
    return np.array(sorted(times), np.float64)


def _one_pass_is_cheaper(path, seconds: list[float], info: MediaInfo) -> bool:
    """Whether decoding from the start through the last of ``seconds`` costs less than seeking to each.

    A seek decodes from the keyframe before its time: a video with keyframes
    far apart (a phone's 1080p HEVC may hold one) decodes from the start for
    every seek, and one pass through them all is several times cheaper.
    """
    keyframes = keyframe_times(path, seconds[-1])
    if not len(keyframes):
        return True
    start = START_PIXELS / max(info.width * info.height * max(info.fps, 1.0), 1.0)  # in seconds of video
    before = keyframes[np.maximum(np.searchsorted(keyframes, seconds, side="right") - 1, 0)]
    seeking = float(np.sum(np.asarray(seconds) - before)) + start * len(seconds)
    return seconds[-1] + start < seeking


def read_frames_at(path, seconds, info: MediaInfo | None = None) -> list[np.ndarray | None]:
    """``read_frame_at`` for each of ``seconds`` (None past the end): the same frames, decoded in one pass
    (ffmpeg's ``select``) when that decodes less than a seek to each (``keyframe_times``)."""
    info = info or probe(path)
    wanted = sorted({max(float(t), 0.0) for t in seconds})
    if len(wanted) < 2 or not _one_pass_is_cheaper(path, wanted, info):
        found = {t: read_frame_at(path, t, info) for t in wanted}
    else:
        found = dict(zip(wanted, _select_frames(path, wanted, info)))
    return [found.get(max(float(t), 0.0)) for t in seconds]


def _select_frames(path, seconds: list[float], info: MediaInfo) -> list[np.ndarray | None]:
    """The first frame at or after each of the ascending ``seconds`` (what ``read_frame_at``'s seek gives), in one
    decoding pass that stops after the last."""
    # A frame is wanted when it is the first whose time reaches t: its predecessor's (prev_t, NAN for the
    # first frame) does not.
    wanted = "+".join(f"gte(t,{t:.6f})*not(gte(prev_t,{t:.6f}))" for t in seconds)
    cmd = _rgb24_command(
        path, ["-vf", f"select='{wanted}'", "-fps_mode", "passthrough", "-frames:v", str(len(seconds))]
    )
    result = subprocess.run(cmd, capture_output=True, check=False)
    frame_bytes = info.width * info.height * 3
    count = len(result.stdout) // frame_bytes if result.returncode == 0 else 0
    frames = [
        np.frombuffer(result.stdout, np.uint8, frame_bytes, i * frame_bytes).reshape(info.height, info.width, 3)
        for i in range(count)
    ]
    return frames + [None] * (len(seconds) - count)


def atomic_output(path, overwrite: bool = False):
    """``outputs.atomic_file``: a temporary path beside ``path``, moved into place only on success."""
    return outputs.atomic_file(path, overwrite=overwrite)


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB of even H and W -> ffmpeg's yuv420p bytes, (H * 3 / 2, W): BT.601 limited range,
    the matrix ffmpeg itself converts rgb24 with, and each 2 x 2 block's chroma averaged."""
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420)


class VideoWriter:
    """Stream RGB frames into an H.264 mp4 through ffmpeg's stdin, audio muxed.

    ``audio`` is a waveform at ``sample_rate`` or a media file whose first
    audio track ffmpeg reads itself (nothing held in memory). The frames set
    the length: the audio is cut or padded with silence to exactly the
    video's duration. Frames are encoded as they come; the audio is muxed
    in a second, stream-copying pass once the frame count is known (a
    single pass ends the AAC stream up to a block past the video, which
    lengthens the file by more than a frame).

    Frames of even width and height go to ffmpeg as yuv420p, converted here
    (``rgb_to_yuv420p``: OpenCV, in the calling thread, without the GIL):
    several times cheaper than ffmpeg's own conversion from rgb24, and half
    the bytes through the pipe (1080p: about 1 ms a frame instead of 7).
    Odd sizes go as rgb24, padded by ffmpeg.

    Use as a context manager; the file appears under its name only when the
    block ends without error.
    """

    AUDIO_RATE = 48000

    def __init__(
        self,
        path,
        width: int,
        height: int,
        fps: float = audio_lib.FPS,
        audio: np.ndarray | str | Path | None = None,
        sample_rate: int = audio_lib.SAMPLE_RATE,
        overwrite: bool = False,
        crf: int = 18,
    ):
        self.path, self.width, self.height, self.fps = Path(path), width, height, fps
        self.audio, self.sample_rate, self.overwrite, self.crf = audio, sample_rate, overwrite, crf
        self.frames_written = 0

    def __enter__(self):
        self._output = atomic_output(self.path, self.overwrite)
        self._tmp = self._output.__enter__()
        # Beside the output, not in /tmp: an hour of video can be larger than /tmp.
        self._tmpdir = tempfile.TemporaryDirectory(
            prefix=outputs.temporary_name(self.path, ".parts", reserve=8), dir=self.path.parent
        )
        self._video = self._tmp if self.audio is None else Path(self._tmpdir.name) / "video.mp4"
        self._yuv = self.width % 2 == 0 and self.height % 2 == 0
        # yuv420p needs even sizes: odd ones come as rgb24, padded by one pixel.
        layout = ["-pix_fmt", "yuv420p"] if self._yuv else ["-pix_fmt", "rgb24"]
        pad = [] if self._yuv else ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        cmd = [
            require_tool("ffmpeg"),
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            *layout,
            "-s",
            f"{self.width}x{self.height}",
            "-r",
            str(self.fps),
            "-i",
            "-",
            *pad,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            str(self.crf),
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            _file(self._video),
        ]
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._stderr)
        return self

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3):
            raise ValueError(f"frame shape {frame.shape} != {(self.height, self.width, 3)}")
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        self._proc.stdin.write(rgb_to_yuv420p(frame) if self._yuv else frame)  # no copy into bytes
        self.frames_written += 1

    def _mux_audio(self) -> str | None:
        """Mux the audio, cut or padded to the video's duration; ffmpeg's last error line, or None."""
        audio = self.audio
        if not isinstance(audio, (str, Path)):
            audio = Path(self._tmpdir.name) / "audio.wav"
            write_wav(audio, self.audio, self.sample_rate)
        samples = round(self.frames_written / self.fps * self.AUDIO_RATE)
        cmd = [
            require_tool("ffmpeg"),
            "-v",
            "error",
            "-y",
            "-nostdin",
            "-i",
            _file(self._video),
            "-i",
            _file(audio),
            "-map",
            "0:v:0",
            "-map",
            "1:a:0",
            "-c:v",
            "copy",
            "-af",
            f"aresample={self.AUDIO_RATE},apad=whole_len={samples},atrim=end_sample={samples}",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            _file(self._tmp),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return None if result.returncode == 0 else _last_line(result.stderr)

    def __exit__(self, exc_type, exc, tb):
        self._proc.stdin.close()
        code = self._proc.wait()
        self._stderr.seek(0)
        message = _last_line(self._stderr.read().decode(errors="replace"))
        self._stderr.close()
        if exc_type is None and code == 0 and self.audio is not None:
            message = self._mux_audio()
            code = 0 if message is None else 1
        self._tmpdir.cleanup()
        if exc_type is None and code != 0:
            error = MediaError(self.path, f"ffmpeg failed to encode ({message})")
            self._output.__exit__(MediaError, error, None)  # deletes the partial file
            raise error
        # Moves the file into place on success, deletes the partial file otherwise.
        self._output.__exit__(exc_type, exc, tb)
        return False
