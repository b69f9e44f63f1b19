"""python -m keras_s2v.evaluate end to end with tiny models: the report, baselines, plots and bad inputs."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_s2v.evaluation import evaluate_lib, report


@pytest.fixture(scope="module")
def models(trained_tiny):
    """A tiny generator and sync expert after a few training steps (shared with other files: read only)."""
    return {"model": trained_tiny("s2v_tiny"), "sync": trained_tiny("syncnet_tiny")}


@pytest.fixture(scope="module")
def evaluated(models, synth_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report"
    result = evaluate_lib.evaluate(
        models["model"], out, data=synth_shards, sync_model=models["sync"], acd_stride=10, log=lambda _: None
    )
    return out, result


def test_report_has_every_method_metric_and_plot(evaluated):
    out, result = evaluated
    assert result["split"] == "validation" and result["clips"] == 2
    summary = result["summary"]
    assert set(summary) == set(report.METHODS)
    for method in report.METHODS:
        assert {
            "psnr",
            "ssim",
            "psnr_lower",
            "cpbd",
            "fdbm",
            "lmd",
            "acd",
            "sync_offset",
            "sync_confidence",
            "blinks_per_minute",
        } <= set(summary[method]), method
    # The ceilings: ground truth is identical to itself; the still's descriptor is the reference's.
    assert summary["ground truth"]["psnr"]["mean"] == float("inf") and summary["ground truth"]["ssim"]["mean"] == 1.0
    assert (
        summary["ground truth"]["lmd"]["mean"] == 0.0 and summary["ground truth"]["mouth_correlation"]["mean"] > 0.999
    )
    assert summary["still"]["acd"]["mean"] < 1e-6
    assert summary["ground truth"]["sync_in_sync"]["mean"] == 1.0  # the real clip is held to its own offset
    assert "mouth_correlation" not in summary["still"]  # a still mouth has no correlation: left out, not 0
    # An untrained model's frames are worse than the still's on PSNR.
    assert summary["model"]["psnr"]["mean"] < summary["still"]["psnr"]["mean"]
    saved = json.loads((out / "report.json").read_text())
    assert saved["summary"]["ground truth"]["psnr"]["mean"] == "inf"
    table = (out / "report.md").read_text()
    assert "| ground truth | ∞ | 1.000 ± 0.000 |" in table and "| shuffled audio |" in table
    clips = [c["clip"] for c in saved["per_clip"]]
    for clip in clips:
        name = report._safe_name(clip)
        assert (out / "plots" / f"mouth_{name}.png").stat().st_size > 1000
        assert (out / "plots" / f"sync_{name}.png").stat().st_size > 1000
    assert (out / "contact_sheet.png").stat().st_size > 1000
    curve = saved["per_clip"][0]["series"]["model"]["sync"]
    assert len(curve["offsets"]) == len(curve["distances"]) > 1


def test_shuffled_audio_really_drives_the_model_with_other_audio(models, synth_shards):
    from keras_s2v import backends

    clips = list(evaluate_lib.clips_from_shards(synth_shards, "validation"))
    backend = backends.load_generator(models["model"])
    own = evaluate_lib.generate(backend, clips[0], clips[0].pcm_windows())
    other = evaluate_lib.generate(backend, clips[0], evaluate_lib.shuffled_windows(clips, 0))
    assert own.shape == other.shape == clips[0].frames.shape
    assert np.abs(own.astype(int) - other).max() > 0


def test_the_deblurring_cnn_sharpens_the_model_and_shuffled_rows_alike(models, synth_shards):
    from keras_s2v import backends

    clips = list(evaluate_lib.clips_from_shards(synth_shards, "validation", max_frames=4))
    backend = backends.load_generator(models["model"])
    plain = evaluate_lib.method_frames(backend, clips, 0)
    darker = evaluate_lib.method_frames(backend, clips, 0, deblur=lambda faces: np.asarray(faces) * 0.5)
    for method in (evaluate_lib.MODEL, evaluate_lib.SHUFFLED):
        np.testing.assert_allclose(darker[method], plain[method] * 0.5, atol=1.0)
    for method in (evaluate_lib.STILL, evaluate_lib.TRUTH):  # the baselines are real frames, never deblurred
        np.testing.assert_array_equal(darker[method], plain[method])


def test_a_masked_target_model_is_evaluated_on_each_real_frame(synth_shards):
    from keras_s2v import backends, frame_loop
    from keras_s2v.models.speech2vid import Speech2Vid

    clip = next(evaluate_lib.clips_from_shards(synth_shards, "validation", max_frames=6))
    backend = backends.KerasGenerator(Speech2Vid(width=0.125, embedding_dim=32, masked_target=True))
    same_audio = np.repeat(clip.pcm_windows()[:1], clip.num_frames, axis=0)
    frames = evaluate_lib.generate(backend, clip, same_audio, batch_size=4).astype(int)
    assert frames.shape == clip.frames.shape
    expected = backend.identity_features(frame_loop.identity_faces(backend, clip.frames[:1], clip.frames[5:6]))
    np.testing.assert_allclose(backend.generate_frame_pcm(expected, same_audio[:1])[0] * 255, frames[5], atol=1.01)
    assert np.abs(frames[5] - frames[0]).max() > 0  # the same audio, another frame's upper half


def test_metrics_against_references(evaluated, synth_shards):
    """PSNR in the report is the mean over frames of the per-frame PSNR."""
    from keras_s2v.evaluation import quality

    _, result = evaluated
    clip = next(evaluate_lib.clips_from_shards(synth_shards, "validation"))
    still = np.repeat(clip.frames[:1], clip.num_frames, axis=0)
    psnr = [quality.psnr(r, f) for r, f in zip(clip.frames, still)]
    expected = np.mean(np.minimum(psnr, 100.0))
    assert result["per_clip"][0]["metrics"]["still"]["psnr"] == pytest.approx(expected)


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "keras_s2v.evaluate", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_command_line_and_bad_inputs(models, synth_shards, tmp_path, run_main_here):
    def evaluate(model, out, **options):  # the command's main in this process, without a TensorFlow start-up
        return run_main_here(lambda: evaluate_lib.evaluate(model, out, log=lambda _: None, **options))

    # Data prepared with another face size or other audio parameters is refused, naming the parameter.
    for field, value, expected in (
        ("crop_size", 96, "crop_size (112 vs 96)"),
        ("audio", {"sample_rate": 8000}, "audio.sample_rate (16000 vs 8000)"),
    ):
        other = tmp_path / f"other_{field}"
        shutil.copytree(synth_shards, other)
        config = json.loads((other / "prepare_config.json").read_text())
        config[field] = {**config.get("audio", {}), **value} if isinstance(value, dict) else value
        (other / "prepare_config.json").write_text(json.dumps(config))
        if field == "crop_size":  # through the command: one error line, exit status 2
            run = _run("--model", models["model"], "--data", other, "--out", tmp_path / "r1")
            status, stderr = run.returncode, run.stderr
            assert stderr.strip().splitlines()[-1].startswith("error: "), stderr
        else:
            status, stderr = evaluate(models["model"], tmp_path / "r1", data=other)
        assert status == 2 and expected in stderr and "Traceback" not in stderr, stderr
        assert not (tmp_path / "r1").exists()
    # Not a generator; no data; an existing report.
    status, stderr = evaluate(models["sync"], tmp_path / "r2", data=synth_shards)
    assert status == 2 and "not a talking-face generator" in stderr
    status, stderr = evaluate(models["model"], tmp_path / "r2", data=synth_shards, deblur=models["sync"])
    assert status == 2 and "not a deblurring CNN" in stderr and "Traceback" not in stderr
    status, stderr = evaluate(models["model"], tmp_path / "r3", data=tmp_path / "nowhere")
    assert status == 2 and "nowhere" in stderr and "Traceback" not in stderr
    (tmp_path / "r4").mkdir()
    (tmp_path / "r4" / "keep.txt").write_text("mine")
    status, stderr = evaluate(models["model"], tmp_path / "r4", data=synth_shards, max_clips=1)
    assert status == 2 and "--overwrite" in stderr
    assert (tmp_path / "r4" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()
    # A good run through the command line, without a sync expert: no sync columns.
    run = _run(
        "--model",
        models["model"],
        "--data",
        synth_shards,
        "--out",
        tmp_path / "r5",
        "--max_clips",
        "1",
        "--acd_stride",
        "20",
    )
    assert run.returncode == 0, run.stderr
    assert "| model |" in run.stdout and "LSE-C" not in run.stdout
    assert (tmp_path / "r5" / "report.md").exists()


def test_videos_are_prepared_on_the_fly_and_a_bad_one_is_skipped(models, synth_shards, tmp_path):
    video = min((synth_shards.parent / "corpus").rglob("*.mp4"))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    messages = []
    result = evaluate_lib.evaluate(
        models["model"], tmp_path / "r", videos=[broken, video], max_frames=30, acd_stride=30, log=messages.append
    )
    lengths = [c["frames"] for c in result["per_clip"]]
    assert max(lengths) <= 30 and result["clips"] == -(-result["frames"] // 30) and result["frames"] > 60
    assert any("broken.mp4" in m and "skipped" in m for m in messages)
