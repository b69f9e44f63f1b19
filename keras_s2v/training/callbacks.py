"""Training callbacks."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


def image_grid(identity: np.ndarray, generated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(rows x 3) grid, one row per sample: identity | generated | ground truth, uint8."""
    rows = [np.concatenate([i, g, t], axis=1) for i, g, t in zip(identity, generated, truth)]
    return (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255).round().astype(np.uint8)


class HistoryFile(keras.callbacks.Callback):
    """Append each finished epoch's metrics to a JSON list, so a crashed run keeps its history."""

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        import json

        records = json.loads(self.path.read_text()) if self.path.exists() else []
        records = [r for r in records if r["epoch"] != epoch + 1]
        records.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        tmp = self.path.with_suffix(".partial")
        tmp.write_text(json.dumps(sorted(records, key=lambda r: r["epoch"]), indent=1))
        tmp.replace(self.path)


class ImageGrid(keras.callbacks.Callback):
    """Each epoch: generate a fixed validation batch and log identity | generated | ground truth.

    Written to TensorBoard (``log_dir``) and as ``samples_dir/latest.png`` for
    machines without TensorBoard.
    """

    def __init__(self, batch, log_dir, samples_dir):
        super().__init__()
        self.inputs, self.truth = batch
        self.log_dir, self.samples_dir = str(log_dir), Path(samples_dir)

    def on_epoch_end(self, epoch, logs=None):
        import cv2
        import tensorflow as tf

        generated = np.asarray(self.model.predict(self.inputs, verbose=0))
        identity = self.inputs["faces"][..., :3] if isinstance(self.inputs, dict) else self.inputs
        grid = image_grid(np.asarray(identity), generated, np.asarray(self.truth))
        with tf.summary.create_file_writer(self.log_dir).as_default():
            tf.summary.image("identity | generated | truth", grid[None], step=epoch)
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(self.samples_dir / "latest.png"), grid[..., ::-1])
