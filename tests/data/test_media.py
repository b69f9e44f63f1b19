"""Hostile input media: truncated files, non-finite audio, oversized images, names ffmpeg could misread.

Every file is made here, a few seconds long, with ffmpeg or NumPy.
"""

import struct
import subprocess
import zlib

import numpy as np
import pytest

from keras_s2v.data import audio, media


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-nostdin", *map(str, args)], check=True)


def _cut(path, share: float = 0.5):
    """A copy of ``path`` holding only its first ``share`` of bytes, as an interrupted copy leaves it."""
    data = path.read_bytes()
    cut = path.with_name(f"cut_{path.name}")
    cut.write_bytes(data[: int(len(data) * share)])
    return cut


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """6 s of tone as m4a (index first, as phones write it), wav, and a 6 s 64 x 64 video as mp4 and mkv."""
    root = tmp_path_factory.mktemp("media")
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:duration=6", "-ar", audio.SAMPLE_RATE]
    _ffmpeg(*tone, "-c:a", "aac", "-movflags", "+faststart", root / "speech.m4a")
    _ffmpeg(*tone, root / "speech.wav")
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x64:rate=25:duration=6",
        *tone,
        "-shortest",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-movflags",
        "+faststart",
        root / "clip.mp4",
    )
    _ffmpeg("-i", root / "clip.mp4", "-c", "copy", root / "clip.mkv")
    return root


def _decoded_seconds(path) -> float:
    return sum(len(chunk) for chunk in media.iter_audio(path)) / audio.SAMPLE_RATE


# --- Truncated files (issue 16, defect 6) -----------------------------------------------------


def test_intact_files_decode_to_their_declared_length(clips):
    for name in ("speech.m4a", "speech.wav", "clip.mp4"):
        assert _decoded_seconds(clips / name) == pytest.approx(6, abs=0.1)  # AAC adds its priming
        media.check_audio(clips / name)
    for name in ("clip.mp4", "clip.mkv"):
        assert abs(sum(1 for _ in media.iter_frames(clips / name)) - 150) <= 2  # Matroska rounds to the ms
        media.check_packets(clips / name)


@pytest.mark.parametrize("name", ["speech.m4a", "clip.mp4", "clip.mkv"])
def test_truncated_audio_is_an_error_naming_the_file_and_both_lengths(clips, name):
    cut = _cut(clips / name)
    assert media.probe(cut).duration == pytest.approx(6, abs=0.1)  # the container still declares 6 s
    for check in (_decoded_seconds, media.check_audio):
        with pytest.raises(media.MediaError, match=r"decodes to [23]\.\d\d s of the 6\.0\d s") as error:
            check(cut)
        assert error.value.path == str(cut) and " @ 0x" not in str(error.value)  # ffmpeg's "[mov @ 0x55...]" cut


def test_a_wav_whose_header_promises_more_than_it_holds(clips):
    cut = _cut(clips / "speech.wav")
    assert media.probe(cut).duration == pytest.approx(3, abs=0.05)  # ffprobe believes the file, not the header
    with pytest.raises(media.MediaError, match=r"cut_speech.wav: .*decodes to 3\.00 s of the 6\.00 s"):
        _decoded_seconds(cut)


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv"])
def test_truncated_video_is_an_error_when_its_frames_run_out(clips, name):
    cut = _cut(clips / name)
    frames = media.iter_frames(cut)
    count = 0
    with pytest.raises(media.MediaError, match=r"cut_clip.*video decodes to [23]\.\d\d s of the 6\.0\d s"):
        for _ in frames:
            count += 1
    assert 40 < count < 110  # the frames it holds came out first


def test_a_truncated_mp4_is_found_before_decoding(clips):
    cut = _cut(clips / "clip.mp4")
    with pytest.raises(media.MediaError, match=r"cut_clip.mp4: .*video .* frames of the 150"):
        media.check_packets(cut)
    media.check_packets(_cut(clips / "clip.mkv"))  # Matroska declares no frame count: left to the decoder


def test_files_that_declare_no_length_still_decode(clips, tmp_path):
    streamed = tmp_path / "streamed.wav"  # a wav written to a pipe: "size unknown" in its header
    streamed.write_bytes(
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(clips / "speech.wav"), "-f", "wav", "-"],
            capture_output=True,
            check=True,
        ).stdout
    )
    adts = tmp_path / "raw.aac"  # no container: ffprobe estimates the length from the bit rate
    _ffmpeg("-i", clips / "speech.wav", "-c:a", "aac", adts)
    piped = tmp_path / "piped.mkv"  # Matroska written to a pipe: no duration at all
    piped.write_bytes(
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(clips / "clip.mp4"), "-c", "copy", "-f", "matroska", "-"],
            capture_output=True,
            check=True,
        ).stdout
    )
    for path in (streamed, adts, piped, _cut(streamed), _cut(adts), _cut(piped)):
        assert _decoded_seconds(path) > 2.5
        media.check_audio(path)
    assert sum(1 for _ in media.iter_frames(_cut(piped))) > 40


# --- Non-finite audio (defect 11) ------------------------------------------------------------


def test_non_finite_audio_samples_are_the_audio_files_fault(tmp_path):
    import soundfile

    waveform = 0.3 * np.sin(np.arange(2 * audio.SAMPLE_RATE) * 0.05)
    waveform[int(1.5 * audio.SAMPLE_RATE)] = np.nan
    soundfile.write(str(tmp_path / "nan.wav"), waveform, audio.SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(
        media.MediaError,
        match=r"nan.wav: the audio holds samples that are not a number \(NaN\) or "
        r"infinite, the first at 1\.50 s",
    ):
        media.check_audio(tmp_path / "nan.wav")


# --- Oversized images (defect 9) --------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds one scan line (enough for a decoder to start)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1 + 3 * width)))


def _jpeg_header(width: int, height: int) -> bytes:
    """JPEG markers up to a start-of-frame declaring ``width`` x ``height``, after a large EXIF-like segment."""
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 40000) + bytes(40000)
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + bytes(9)
    return b"\xff\xd8" + app1 + sof0 + b"\xff\xd9"


@pytest.mark.parametrize(("make", "name"), [(_png_header, "huge.png"), (_jpeg_header, "huge.jpg")])
def test_an_image_that_declares_too_many_pixels_is_refused_unread(tmp_path, make, name):
    (tmp_path / name).write_bytes(make(50000, 50000))
    with pytest.raises(media.MediaError, match=rf"{name}: image too large: 50000 x 50000 pixels \(2500 megapixels"):
        media.read_image(tmp_path / name)


def test_image_size_is_read_from_the_header(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "small.png"), np.zeros((30, 40, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "small.jpg"), np.zeros((30, 40, 3), np.uint8))
    for name in ("small.png", "small.jpg"):
        assert media.image_size((tmp_path / name).read_bytes()) == (40, 30)
        assert media.read_image(tmp_path / name).shape == (30, 40, 3)
    assert media.image_size(_jpeg_header(7000, 5000)) == (7000, 5000)
    assert media.image_size(b"BM not parsed") is None


# --- File names ffmpeg could read as something else (defect 12) ----------------------------


def test_relative_names_with_a_colon_are_files(clips, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    speech, clip = "take1:final.wav", "take1:clip.mp4"
    (tmp_path / speech).write_bytes((clips / "speech.wav").read_bytes())
    (tmp_path / clip).write_bytes((clips / "clip.mp4").read_bytes())
    assert media.probe(speech).has_audio and media.probe(clip).has_video
    assert _decoded_seconds(speech) == pytest.approx(6)
    media.check_audio(speech)
    media.check_packets(clip)
    assert sum(1 for _ in media.iter_frames(clip)) == 150
    assert media.read_frame_at(clip, 1.0).shape == (64, 64, 3)
    for out, source in (("out:silent.mp4", None), ("out:muxed.mp4", speech)):
        with media.VideoWriter(out, 64, 64, 25, audio=source) as writer:
            for _ in range(25):
                writer.write(np.zeros((64, 64, 3), np.uint8))
        info = media.probe(out)
        assert info.has_video and info.has_audio == (source is not None) and info.duration == pytest.approx(1, abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out:muxed.mp4", "out:silent.mp4", clip, speech]


# --- Frames at given times, and the encoder's input ------------------------------------------


@pytest.mark.parametrize("gop", [1, 1000])  # a keyframe on every frame, or on the first only
def test_frames_at_times_are_the_seeks_frames(tmp_path, gop):
    clip = tmp_path / "clip.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=4", "-g", gop, "-pix_fmt", "yuv420p", clip)
    times = [3.5, 0.02, 1.3, 1.3, 9.0]  # unordered, repeated, one past the end
    frames = media.read_frames_at(clip, times)
    for seconds, frame in zip(times, frames):
        expected = media.read_frame_at(clip, seconds)
        assert (frame is None) == (expected is None) and (frame is None or np.array_equal(frame, expected))
    assert frames[-1] is None and frames[2] is frames[3]


def test_one_pass_only_when_it_decodes_less_than_the_seeks(monkeypatch):
    info = media.MediaInfo(
        "long.mp4", 1920, 1080, 25.0, 600.0, has_video=True, has_audio=False, rotation=0, video_codec="h264"
    )
    times = [60.0, 180.0, 300.0, 420.0, 540.0]
    monkeypatch.setattr(media, "keyframe_times", lambda path, until=None: np.arange(0.0, 600.0, 2.0))
    assert not media._one_pass_is_cheaper("long.mp4", times, info)  # 10 minutes, a keyframe every 2 s
    monkeypatch.setattr(media, "keyframe_times", lambda path, until=None: np.array([0.0]))
    assert media._one_pass_is_cheaper("long.mp4", times, info)  # one keyframe: every seek decodes from the start


@pytest.mark.parametrize("width", [64, 63])  # yuv420p from here, or rgb24 padded by ffmpeg
def test_written_frames_keep_their_colours(tmp_path, width):
    y, x = np.mgrid[0:48, 0:width]
    frame = np.stack([40 + 2 * x, 40 + 3 * y, 200 - x - y], -1).astype(np.uint8)  # strong colour gradients
    with media.VideoWriter(tmp_path / "out.mp4", width, 48, 25) as writer:
        for _ in range(3):
            writer.write(frame)
    decoded = list(media.iter_frames(tmp_path / "out.mp4"))
    assert len(decoded) == 3
    # Chroma at half resolution costs this small image 1-2 levels either way; a range or matrix mix-up, 10 or more.
    difference = decoded[0][:, :width].astype(int) - frame
    assert np.abs(difference.mean((0, 1))).max() < 3.0 and np.abs(difference).mean() < 3.0
