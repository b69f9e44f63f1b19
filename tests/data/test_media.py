"""Hostile input media: truncated files, non-finite audio, oversized images, names ffmpeg could misread.

Every file is made here, a few seconds long, with ffmpeg or NumPy.
"""

import subprocess

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
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=25:duration=6", *tone, "-shortest", "-c:v", "libx264",
            "-g", "25", "-c:a", "aac", "-movflags", "+faststart", root / "clip.mp4")  # fmt: skip
    _ffmpeg("-i", root / "clip.mp4", "-c", "copy", root / "clip.mkv")
    return root


def _decoded_seconds(path) -> float:
    return sum(len(chunk) for chunk in media.iter_audio(path)) / audio.SAMPLE_RATE


# --- File names ffmpeg could read as something else (defect 12) ----------------------------


def test_relative_names_with_a_colon_are_files(clips, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    speech, clip = "take1:final.wav", "take1:clip.mp4"
    (tmp_path / speech).write_bytes((clips / "speech.wav").read_bytes())
    (tmp_path / clip).write_bytes((clips / "clip.mp4").read_bytes())
    assert media.probe(speech).has_audio and media.probe(clip).has_video
    assert _decoded_seconds(speech) == pytest.approx(6)
    assert sum(1 for _ in media.iter_frames(clip)) == 150
    assert media.read_frame_at(clip, 1.0).shape == (64, 64, 3)
    for out, source in (("out:silent.mp4", None), ("out:muxed.mp4", speech)):
        with media.VideoWriter(out, 64, 64, 25, audio=source) as writer:
            for _ in range(25):
                writer.write(np.zeros((64, 64, 3), np.uint8))
        info = media.probe(out)
        assert info.has_video and info.has_audio == (source is not None) and info.duration == pytest.approx(1, abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out:muxed.mp4", "out:silent.mp4", clip, speech]
