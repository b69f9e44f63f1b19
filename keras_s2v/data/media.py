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
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from keras_s2v.data import audio as audio_lib


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

    @property
    def is_still_image(self) -> bool:
        """A photo (JPEG, PNG, ...) that ffmpeg opens as a one-frame video."""
        return self.container == "image2" or self.container.endswith("_pipe")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def probe(path) -> MediaInfo:
    """Streams of a media file, or ``MediaError`` saying why it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file not found")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a media file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    cmd = [require_tool("ffprobe"), "-v", "error", "-show_streams", "-show_format", "-of", "json", _file(path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise MediaError(path, f"not a media file ffmpeg can read ({_last_line(result.stderr)})")
    info = json.loads(result.stdout or "{}")
    streams = info.get("streams", [])
    # Cover art in audio files shows up as a one-frame video stream.
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
        ),
        None,
    )
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    duration = float(info.get("format", {}).get("duration") or 0.0)
    container = info.get("format", {}).get("format_name", "")
    if video is None:
        return MediaInfo(str(path), 0, 0, 0.0, duration, False, has_audio, 0, None, container)
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
    return MediaInfo(str(path), width, height, fps, duration, True, has_audio, rotation, video.get("codec_name"), container)


def iter_audio(path, chunk_samples: int = 10 * audio_lib.SAMPLE_RATE, sample_rate: int = audio_lib.SAMPLE_RATE,
               info: MediaInfo | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """Yield the audio track as float32 mono chunks of ``chunk_samples`` at ``sample_rate``.

    Any format ffmpeg reads, resampled and downmixed by ffmpeg, streamed
    through a pipe: memory does not grow with the recording's length.
    Raises ``MediaError`` when there is no audio, when nothing decodes, or
    when ffmpeg fails part way (a truncated output is worse than none).
    """
    info = info or probe(path)
    if not info.has_audio:
        raise MediaError(path, "no audio stream")
    cmd = [require_tool("ffmpeg"), "-v", "error", "-nostdin", "-i", _file(path), "-vn", "-ac", "1",
           "-ar", str(sample_rate), "-f", "s16le", "-"]  # fmt: skip
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
        total = 0
        try:
            while True:
                buf = proc.stdout.read(chunk_samples * 2)
                buf = buf[: len(buf) // 2 * 2]
                if buf:
                    total += len(buf) // 2
                    yield audio_lib.to_float(np.frombuffer(buf, np.int16))
                if len(buf) < chunk_samples * 2:
                    break
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
        errors.seek(0)
        message = _last_line(errors.read().decode(errors="replace"))
    if code != 0:
        raise MediaError(path, f"audio could not be decoded ({message})")
    if total == 0:
        raise MediaError(path, "audio stream decodes to no samples")


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


def iter_frames(path, fps: float = audio_lib.FPS, max_side: int | None = None, info: MediaInfo | None = None
                ) -> Iterator[np.ndarray]:  # fmt: skip
    """Yield upright RGB uint8 frames resampled to a constant ``fps``.

    Streams through a pipe, so memory does not grow with the video's length.
    A decode error after some frames ends the stream (a truncated file gives
    what it holds); one before any frame raises ``MediaError``.
    """
    info = info or probe(path)
    if not info.has_video:
        raise MediaError(path, "no video stream")
    width, height = output_size(info, max_side)
    filters = f"fps={fps},scale={width}:{height}:flags=area"
    cmd = [require_tool("ffmpeg"), "-v", "error", "-nostdin", "-i", _file(path), "-an", "-vf", filters,
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]  # fmt: skip
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
        if count == 0:
            errors.seek(0)
            raise MediaError(path, f"no video frame could be decoded ({_last_line(errors.read().decode(errors='replace'))})")


def read_frame_at(path, seconds: float, info: MediaInfo | None = None) -> np.ndarray | None:
    """The upright RGB frame shown at ``seconds`` (ffmpeg seeks), or None past the end."""
    info = info or probe(path)
    if not info.has_video:
        raise MediaError(path, "no video stream")
    cmd = [require_tool("ffmpeg"), "-v", "error", "-nostdin", "-ss", f"{max(seconds, 0.0):.3f}", "-i", _file(path),
           "-an", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]  # fmt: skip
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
        raise MediaError(path, f"image too large: {size[0]} x {size[1]} pixels ({size[0] * size[1] / 1e6:.0f} "
                               f"megapixels, the limit is {MAX_IMAGE_PIXELS / 1e6:.0f}); scale it down")  # fmt: skip
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


@contextlib.contextmanager
def atomic_output(path, overwrite: bool = False):
    """Yield a temporary path beside ``path``; move it into place only on success.

    An existing output is kept unless ``overwrite``; an interrupted write leaves
    no truncated file under the output's name.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (pass --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it owner-only; give it a normal file's mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class VideoWriter:
    """Stream RGB frames into an H.264 mp4 through ffmpeg's stdin, audio muxed.

    ``audio`` is a waveform at ``sample_rate`` or a media file whose first
    audio track ffmpeg reads itself (nothing held in memory). The frames set
    the length: the audio is cut or padded with silence to exactly the
    video's duration. Frames are encoded as they come; the audio is muxed
    in a second, stream-copying pass once the frame count is known (a
    single pass ends the AAC stream up to a block past the video, which
    lengthens the file by more than a frame).

    Use as a context manager; the file appears under its name only when the
    block ends without error.
    """

    AUDIO_RATE = 48000

    def __init__(self, path, width: int, height: int, fps: float = audio_lib.FPS,
                 audio: np.ndarray | str | Path | None = None, sample_rate: int = audio_lib.SAMPLE_RATE,
                 overwrite: bool = False, crf: int = 18):  # fmt: skip
        self.path, self.width, self.height, self.fps = Path(path), width, height, fps
        self.audio, self.sample_rate, self.overwrite, self.crf = audio, sample_rate, overwrite, crf
        self.frames_written = 0

    def __enter__(self):
        self._output = atomic_output(self.path, self.overwrite)
        self._tmp = self._output.__enter__()
        # Beside the output, not in /tmp: an hour of video can be larger than /tmp.
        self._tmpdir = tempfile.TemporaryDirectory(prefix=f".{self.path.stem}.", suffix=".partial", dir=self.path.parent)
        self._video = self._tmp if self.audio is None else Path(self._tmpdir.name) / "video.mp4"
        # yuv420p needs even sizes: pad by one pixel where needed.
        cmd = [require_tool("ffmpeg"), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{self.width}x{self.height}", "-r", str(self.fps), "-i", "-",
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast",
               "-crf", str(self.crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", _file(self._video)]  # fmt: skip
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._stderr)
        return self

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3):
            raise ValueError(f"frame shape {frame.shape} != {(self.height, self.width, 3)}")
        self._proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        self.frames_written += 1

    def _mux_audio(self) -> str | None:
        """Mux the audio, cut or padded to the video's duration; ffmpeg's last error line, or None."""
        audio = self.audio
        if not isinstance(audio, (str, Path)):
            audio = Path(self._tmpdir.name) / "audio.wav"
            write_wav(audio, self.audio, self.sample_rate)
        samples = round(self.frames_written / self.fps * self.AUDIO_RATE)
        cmd = [require_tool("ffmpeg"), "-v", "error", "-y", "-nostdin", "-i", _file(self._video), "-i", _file(audio),
               "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
               "-af", f"aresample={self.AUDIO_RATE},apad=whole_len={samples},atrim=end_sample={samples}",
               "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4", _file(self._tmp)]  # fmt: skip
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
