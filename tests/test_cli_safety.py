"""Every command as a user runs it, with outputs that could destroy inputs, bad flags and signals (issue 16).

Each case is a real subprocess; what matters is the exit status, one ``error:`` line naming the problem,
no traceback, inputs unchanged and nothing left behind.
"""

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from keras_s2v import workdirs
from keras_s2v.configs.experiments import get_experiment
from keras_s2v.data import audio, media
from keras_s2v.models.speech2vid import Speech2Vid

SIZE = 256


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An untrained tiny model, a portrait, 1 s and 30 s of speech, a short video, a folder of shards."""
    import skimage.data

    root = tmp_path_factory.mktemp("safety")
    portrait = cv2.resize(skimage.data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(root / "face.png"), portrait[..., ::-1])
    tone = 0.3 * np.sin(np.arange(30 * audio.SAMPLE_RATE) * 0.07).astype(np.float32)
    media.write_wav(root / "speech.wav", tone[: audio.SAMPLE_RATE])
    media.write_wav(root / "long.wav", tone)
    with media.VideoWriter(root / "clip.mp4", SIZE, SIZE, 25, audio=tone[: audio.SAMPLE_RATE]) as writer:
        for i in range(10):
            writer.write(np.roll(portrait, i, axis=1))
    config = get_experiment("s2v_tiny")
    workdirs.check_workdir(root / "model", config)
    Speech2Vid(1, config.model.width, config.model.embedding_dim, True).save(root / "model" / "model.keras")
    shards = root / "shards"
    shards.mkdir()
    (shards / "train-00000-of-00001.tfrecord").write_bytes(b"someone's shards")
    return root


def run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def refused(result, *words, status=2):
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    return True


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_output_that_is_an_input_is_refused_with_overwrite(files, tmp_path):
    before = snapshot(files)
    common = ["--model", files / "model", "--overwrite"]
    refused(
        run(
            "keras_s2v.generate",
            "--face",
            files / "face.png",
            "--audio",
            files / "speech.wav",
            "--out",
            files / "face.png",
            *common,
        ),
        "face.png: is also the input --face",
    )
    os.symlink(files / "speech.wav", tmp_path / "link.wav")
    refused(
        run(
            "keras_s2v.generate",
            "--face",
            files / "face.png",
            "--audio",
            files / "speech.wav",
            "--out",
            tmp_path / "link.wav",
            *common,
        ),
        "is also the input --audio",
    )
    refused(
        run(
            "keras_s2v.redub",
            "--video",
            files / "clip.mp4",
            "--audio",
            files / "speech.wav",
            "--out",
            files / "clip.mp4",
            *common,
        ),
        "is also the input --video",
    )
    refused(
        run(
            "keras_s2v.lite_client",
            "--model",
            files / "model.tflite",
            "--face",
            files / "face.png",
            "--audio",
            files / "speech.wav",
            "--out",
            files / "face.png",
            "--overwrite",
        ),
        "is also the input --face",
    )
    assert snapshot(files) == before


def test_folder_outputs_never_wipe_their_inputs(files):
    before = snapshot(files)
    shards, model = files / "shards", files / "model"
    refused(
        run("keras_s2v.evaluate", "--model", model, "--data", shards, "--out", shards, "--overwrite"),
        "is the input --data",
    )
    refused(
        run("keras_s2v.evaluate", "--model", model, "--data", shards, "--out", model, "--overwrite"),
        "is the input --model",
    )
    refused(run("export", "--workdir", model, "--out", model, "--overwrite"), "is the input --workdir")
    refused(run("export", "--workdir", model, "--out", files, "--overwrite"), "holds the input --workdir")
    refused(
        run("keras_s2v.prepare", "--input", files / "clip.mp4", "--out", shards),
        "holds files prepare did not write (no prepare_config.json)",
    )
    assert snapshot(files) == before


def test_unusable_output_locations_are_one_error_line(files, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    generate = [
        "keras_s2v.generate",
        "--face",
        files / "face.png",
        "--audio",
        files / "speech.wav",
        "--model",
        files / "model",
    ]
    refused(run(*generate, "--out", tmp_path / ("n" * 300 + ".mp4")), "file name is 304 bytes long")
    refused(
        run(
            "keras_s2v.lite_client",
            "--model",
            files / "model.tflite",
            "--face",
            files / "face.png",
            "--audio",
            files / "speech.wav",
            "--out",
            tmp_path,
            "--overwrite",
        ),
        "is a folder",
    )
    refused(run("keras_s2v.prepare", "--input", files / "clip.mp4", "--out", a_file), "is a file, not a folder")
    if os.geteuid() == 0:
        read_only = "/proc"
    else:
        read_only = tmp_path / "read_only"
        read_only.mkdir()
        read_only.chmod(0o555)
    refused(run(*generate, "--out", f"{read_only}/talking.mp4"), "cannot write in")
    refused(run("keras_s2v.prepare", "--input", files / "clip.mp4", "--out", f"{read_only}/shards"), "cannot write in")


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--fps", "inf"),
        ("--fps", "nan"),
        ("--fps", "0"),
        ("--batch_size", "0"),
        ("--batch_size", "-1"),
        ("--face_index", "-2"),
    ],
)
def test_bad_numeric_flags_are_refused_before_any_work(files, tmp_path, flag, value):
    result = run(
        "keras_s2v.generate",
        "--face",
        files / "face.png",
        "--audio",
        files / "speech.wav",
        "--model",
        files / "model",
        "--out",
        tmp_path / "o.mp4",
        flag,
        value,
        timeout=60,
    )
    refused(result, f"{flag}={value}", "must be a finite number", status=1)
    assert not (tmp_path / "o.mp4").exists()


def test_bad_patterns_and_fractions_are_refused_naming_the_flag(tmp_path):
    refused(
        run("keras_s2v.prepare", "--input", tmp_path, "--out", tmp_path / "o", "--speaker_from", "(id"),
        "--speaker_from=(id: not a valid regular expression",
        status=1,
    )
    refused(
        run("keras_s2v.prepare", "--input", tmp_path, "--out", tmp_path / "o", "--holdout_tail", "nan"),
        "--holdout_tail=nan",
        status=1,
    )
    refused(
        run(
            "keras_s2v.evaluate", "--model", tmp_path, "--data", tmp_path, "--out", tmp_path / "o", "--acd_stride", "0"
        ),
        "--acd_stride=0",
        status=1,
    )


def _start(args):
    # Ctrl-C as in a terminal: a suite started in the background (`make test &`, nohup) hands its children
    # SIGINT ignored, and Python then never raises KeyboardInterrupt.
    return subprocess.Popen(
        [sys.executable, "-m", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(predicate, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_run_leaves_no_partial_files(files, tmp_path, signum, status):
    out = tmp_path / "talking.mp4"
    process = _start(
        [
            "keras_s2v.generate",
            "--face",
            files / "face.png",
            "--audio",
            files / "long.wav",
            "--model",
            files / "model",
            "--out",
            out,
            "--batch_size",
            "5",
            "--quiet",
        ]
    )
    _wait_for(lambda: any(".partial" in p.name for p in tmp_path.iterdir()), process)  # frames are being written
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status and "interrupted: no output written" in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_start_up_is_one_line(files, tmp_path):
    process = _start(
        [
            "keras_s2v.generate",
            "--face",
            files / "face.png",
            "--audio",
            files / "speech.wav",
            "--model",
            files / "model",
            "--out",
            tmp_path / "o.mp4",
        ]
    )
    time.sleep(1.0)  # flags parsed, TensorFlow still importing
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted: no output written" in stderr and "Traceback" not in stderr


def test_a_mistyped_input_and_an_absurd_frame_rate_are_refused(files, tmp_path):
    refused(
        run("keras_s2v.prepare", "--input", tmp_path / "missing", "--out", tmp_path / "o"),
        "missing: no such file or folder",
    )
    assert not (tmp_path / "o").exists()
    refused(
        run(
            "keras_s2v.generate",
            "--face",
            files / "face.png",
            "--audio",
            files / "speech.wav",
            "--model",
            files / "model",
            "--out",
            tmp_path / "o.mp4",
            "--fps",
            "1000",
        ),
        "--fps=1000",
        status=1,
    )
    assert not (tmp_path / "o.mp4").exists()


def test_the_clients_blame_non_finite_audio_on_the_audio(files, tmp_path):
    import soundfile

    bad = tmp_path / "nan.wav"
    samples = np.zeros(audio.SAMPLE_RATE, np.float32)
    samples[4000] = np.nan
    soundfile.write(bad, samples, audio.SAMPLE_RATE, subtype="FLOAT")
    refused(
        run(
            "keras_s2v.lite_client",
            "--model",
            files / "model.tflite",
            "--face",
            files / "face.png",
            "--audio",
            bad,
            "--out",
            tmp_path / "o.mp4",
        ),
        "nan.wav",
        "not a number",
    )
    assert not (tmp_path / "o.mp4").exists()
