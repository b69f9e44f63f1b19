"""End to end on project-made data: a synthetic 3 s clip through the prepare CLI."""

import json
import subprocess
import sys

import numpy as np

from keras_s2v.data import features, synth
from keras_s2v.data.face import align


def test_synthetic_clip_prepares_with_landmarks_matching_ground_truth(tmp_path):
    clip_path = tmp_path / "corpus" / "astronaut" / "clip_000.mp4"
    clip_path.parent.mkdir(parents=True)
    synth.render_clip("astronaut", clip_path, seconds=3.0, size=256, seed=1)
    truth = json.loads(clip_path.with_suffix(".json").read_text())
    out = tmp_path / "shards"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_s2v.prepare",
            "--input",
            str(tmp_path / "corpus"),
            "--out",
            str(out),
            "--split",
            "train",
            "--min_track_frames",
            "25",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 of 1 clips prepared" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["entries"][0]
    assert entry["speaker"] == "astronaut" and entry["status"] == "ok"
    assert abs(entry["frames"] - truth["num_frames"]) <= 1

    import tensorflow as tf

    examples = [features.decode_example(r) for r in tf.data.TFRecordDataset(features.list_shards(out, "train"))]
    assert sum(int(e["num_frames"]) for e in examples) >= truth["num_frames"] - 1
    example = examples[0]
    index = example["frame_index"].numpy()
    detected = example["source_landmarks"].numpy()
    expected = np.asarray(truth["landmarks"], np.float32)[index]
    # dlib's 68 points on the rendered face vs the points the renderer moved: a few pixels at 256 px.
    error = np.linalg.norm(detected - expected, axis=-1)
    assert error.mean() < 4.0, error.mean()
    assert align.eye_alignment_error(example["landmarks"].numpy(), 112).mean() < 3.0
    # The detected mouth follows the rendered one.
    opening = synth.inner_lip_gap(detected)
    truth_opening = synth.inner_lip_gap(expected)
    assert np.corrcoef(opening, truth_opening)[0, 1] > 0.7
    assert example["mfcc"].shape == (12, 4 * (len(index) - 1) + 35)

    # The same command again does nothing new and refuses nothing.
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_s2v.prepare",
            "--input",
            str(tmp_path / "corpus"),
            "--out",
            str(out),
            "--split",
            "train",
            "--min_track_frames",
            "25",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and "1 clip(s) already prepared" in again.stdout
