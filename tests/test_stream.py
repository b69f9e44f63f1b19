"""A live stream: raw PCM through a pipe in, each frame out as soon as the audio its window reads has arrived."""

import os
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from keras_s2v import backends, frame_loop, inference
from keras_s2v.data import audio

SIZE = 256
AHEAD = audio.frames_ahead()  # 5: frame t's MFCC window ends 40 samples into frame t + 5


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    import skimage.data

    path = tmp_path_factory.mktemp("stream") / "face.png"
    cv2.imwrite(str(path), cv2.resize(skimage.data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)[..., ::-1])
    return path


def _pipe():
    read, write = os.pipe()
    return os.fdopen(read, "rb"), write


class _Echo:
    """A ``FrameBackend`` whose frame is filled with its window's last sample (k / 256 says: chunk k)."""

    num_identity_images, masked_target, face_size = 1, False, frame_loop.FACE_SIZE
    window_samples, description = audio.MFCC_WINDOW_SAMPLES, "echo"

    def identity_features(self, faces):
        return {"identity": np.zeros((len(faces), 4), np.float32)}

    def generate_frame_pcm(self, identity, pcm):
        last = np.asarray(pcm)[:, -1] * 256 / 255  # to_uint8 makes it k again
        return np.broadcast_to(last[:, None, None, None], (len(pcm), self.face_size, self.face_size, 3))


@pytest.mark.parametrize("threads", [True, False])
def test_frame_k_goes_out_once_the_audio_through_frame_k_plus_ahead_has_arrived(face, monkeypatch, threads):
    monkeypatch.setattr(backends, "load_generator", lambda model: _Echo())
    frames_count = 40
    pcm, write = _pipe()
    done = threading.Condition()
    out, sent, late = [], [0], []  # (chunks sent when the frame went out, its value); chunks sent; waits that failed

    def send():
        try:
            for k in range(frames_count):  # chunk k: frame k's 640 samples, each holding k * 128 (k / 256 as float)
                with done:
                    sent[0] = k + 1  # before it is written: no frame it completes can be out before this
                os.write(write, np.full(audio.SAMPLES_PER_FRAME, k * 128, "<i2").tobytes())
                with done:  # frame k - AHEAD is complete now: it must come out before chunk k + 1 is sent
                    if k >= AHEAD and not late and not done.wait_for(lambda k=k: len(out) > k - AHEAD, timeout=60):
                        late.append(k - AHEAD)  # then the rest goes without waiting: the test fails, not hangs
        finally:
            os.close(write)

    def frame_out(frame):
        with done:
            out.append((sent[0], int(frame[0, 0, 0])))
            done.notify_all()

    info = {}
    sender = threading.Thread(target=send)
    sender.start()
    with pcm:
        summary = inference.stream_photo(
            [face], pcm, "echo", frame_out, crop=True, no_deblur=True, threads=threads, ready=info.update
        )
    sender.join()
    assert late == []
    assert info["frames_ahead"] == AHEAD and (info["width"], info["height"]) == (112, 112)
    assert summary["frames"] == len(out) == audio.num_frames(frames_count * audio.SAMPLES_PER_FRAME)
    # Not later than its audio (before chunk k + AHEAD + 1 was sent), nor earlier (chunk k + AHEAD was needed).
    assert [s for s, _ in out] == [min(k + AHEAD + 1, frames_count) for k in range(frames_count)]
    # Frame k was made from its own window: its last sample is in chunk k + AHEAD (past the end: silence).
    assert [v for _, v in out] == [k + AHEAD if k + AHEAD < frames_count else 0 for k in range(frames_count)]
    assert summary["first_frame_seconds"] >= 0


def test_no_audio_at_all_is_an_error_naming_the_input(face, monkeypatch):
    monkeypatch.setattr(backends, "load_generator", lambda model: _Echo())
    pcm, write = _pipe()
    os.close(write)
    with pcm, pytest.raises(ValueError, match="the microphone: no audio arrived"):
        inference.stream_photo([face], pcm, "echo", lambda frame: None, pcm_name="the microphone", no_deblur=True)


def test_the_command_writes_nothing_but_the_frames_to_standard_output(face, tmp_path):
    from tests.test_generate import _save_untrained

    model = _save_untrained(tmp_path / "model", "s2v_tiny")
    seconds = 1.0
    speech = (0.3 * np.sin(np.arange(int(seconds * audio.SAMPLE_RATE)) * 0.05)).astype(np.float32)
    result = subprocess.run(
        [sys.executable, "-m", "keras_s2v.stream", "--face", str(face), "--model", str(model), "--quiet"],
        input=audio.to_int16(speech).astype("<i2").tobytes(),
        capture_output=True,
        timeout=600,
    )
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, stderr
    frames = audio.num_frames(len(speech))
    assert len(result.stdout) == frames * SIZE * SIZE * 3  # the frames, whole, and not one byte more
    assert f"ready: {SIZE}x{SIZE} rgb24 frames at 25 fps" in stderr and f"t + {AHEAD} has arrived" in stderr
    assert f"streamed {frames} frames" in stderr
    first = np.frombuffer(result.stdout[: SIZE * SIZE * 3], np.uint8).reshape(SIZE, SIZE, 3)
    photo = cv2.imread(str(face))[..., ::-1]
    assert np.array_equal(first[:40], photo[:40]) and not np.array_equal(first, photo)  # the photo, lower face blended


def test_the_command_streams_before_its_input_ends_and_stops_at_once_on_ctrl_c(face, tmp_path):
    # The source stays open (a microphone): the frames its audio completes come out, and Ctrl-C ends the run
    # although the reading thread is still waiting for more.
    import signal

    from tests.test_generate import _save_untrained

    model = _save_untrained(tmp_path / "model", "s2v_tiny")
    command = [sys.executable, "-m", "keras_s2v.stream", "--face", str(face), "--model", str(model), "--crop"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = []
        while not (lines and lines[-1].startswith(b"ready:")):
            lines.append(process.stderr.readline())
            assert lines[-1], b"".join(lines).decode(errors="replace")
        process.stdin.write(np.zeros(audio.SAMPLE_RATE, "<i2").tobytes())  # 1 s: frames 0 .. 25 - 1 - AHEAD
        process.stdin.flush()
        ready = audio.num_frames(audio.SAMPLE_RATE) - AHEAD
        frame = frame_loop.FACE_SIZE**2 * 3
        assert len(process.stdout.read(ready * frame)) == ready * frame
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 130
        stderr = process.stderr.read().decode(errors="replace")
        assert "interrupted: the frames written so far stay written" in stderr and "Traceback" not in stderr
    finally:
        process.kill()
        process.wait()
