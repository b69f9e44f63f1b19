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

        generated, truth = np.asarray(self.model.predict(self.inputs, verbose=0)), np.asarray(self.truth)
        if generated.ndim == 5:  # sequences (B, T, S, S, 3): their middle frames
            generated, truth = generated[:, generated.shape[1] // 2], truth[:, truth.shape[1] // 2]
        if isinstance(self.inputs, dict):
            identity = self.inputs["faces"][..., :3] if "faces" in self.inputs else self.inputs["lips"]
        else:
            identity = self.inputs
        grid = image_grid(np.asarray(identity), generated, truth)
        with tf.summary.create_file_writer(self.log_dir).as_default():
            tf.summary.image("identity | generated | truth", grid[None], step=epoch)
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(self.samples_dir / "latest.png"), grid[..., ::-1])


class SaveBest(keras.callbacks.Callback):
    """Save ``select(model)`` to ``path`` whenever ``monitor`` improves (lower is better).

    ``select`` picks what ships: the model itself, or a GAN trainer's
    generator. Written beside the target and renamed, so an interrupted save
    never leaves a truncated ``model.keras``. A resumed run restarts the best
    value from the saved history, so it does not overwrite a better model.
    """

    def __init__(self, path, select=lambda model: model, monitor: str = "val_loss"):
        super().__init__()
        self.path, self.select, self.monitor = Path(path), select, monitor
        self.best = float("inf")
        history = self.path.parent / "history.json"
        if self.path.exists() and history.exists():
            import json

            values = [r[monitor] for r in json.loads(history.read_text()) if monitor in r]
            self.best = min(values, default=float("inf"))

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not value < self.best:
            return
        self.best = float(value)
        partial = self.path.with_name(f".{self.path.stem}.partial.keras")
        self.select(self.model).save(str(partial))
        partial.replace(self.path)
