"""Training callbacks."""

from __future__ import annotations

import json
import os
import re
import shutil
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

        # Called, not predict()ed: under several workers predict() splits the batch over them and gathers
        # it back (a collective op, and a dict of inputs it cannot gather); one small batch is local work.
        generated, truth = np.asarray(self.model(self.inputs, training=False)), np.asarray(self.truth)
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


class CheckpointsUnreadable(ValueError):
    """A run has checkpoints, but not one of them loads."""


class EpochCheckpoints(keras.callbacks.Callback):
    """The training state after every epoch (weights and optimizer slots), and the resume from it.

    ``folder/epoch_NNN.weights.h5`` is written beside its final name and
    renamed, so a kill at any moment leaves every checkpoint whole; the name
    holds the epoch, so there is no second file to keep in step. A restarted
    ``fit`` loads the newest checkpoint that loads and continues after its
    epoch; one that does not (cut short under older code, a bad disk) is
    skipped with a warning. ``legacy_backup``: the ``BackupAndRestore`` folder
    of runs started before, one more candidate (at its metadata's epoch),
    removed once a newer checkpoint is written. Only the newest ``keep``
    checkpoints stay (one holds the weights and optimizer slots: 150 MB for
    ``s2v_real``, which trains 150 epochs); the best model is ``model.keras``.

    Several workers (``training.distribute``): every one resumes from ``folder``
    (the chief's) and writes to ``write_to`` (the chief: ``folder``; the others a
    temporary folder of their own); ``agree(epoch)`` returns the epoch each worker
    resumes from, and workers that disagree (one does not see the chief's
    checkpoints) stop rather than train apart.
    """

    _NAME = re.compile(r"epoch_(\d+)\.weights\.h5")

    def __init__(self, folder, legacy_backup=None, log=print, keep: int = 3, write_to=None, agree=None):
        super().__init__()
        self.folder = Path(folder)
        self.write_to = Path(write_to) if write_to is not None else self.folder
        self.legacy = Path(legacy_backup) if legacy_backup else None
        self.log = log
        self.keep = keep
        self.agree = agree

    def candidates(self, folder=None) -> list[tuple[int, Path]]:
        """(epoch, weights file) to resume from, newest first; at equal epochs a checkpoint first.
        ``folder``: those of another folder (a worker's own), without the legacy backup."""
        found = []
        for path in Path(folder or self.folder).glob("epoch_*.weights.h5"):
            match = self._NAME.fullmatch(path.name)
            if match:
                found.append((int(match[1]), path))
        if folder is None and self.legacy and (self.legacy / "latest.weights.h5").exists():
            try:  # without its metadata the epoch of the weights is unknown: not a candidate
                epoch = int(json.loads((self.legacy / "training_metadata.json").read_text())["epoch"])
                found.append((epoch, self.legacy / "latest.weights.h5"))
            except (OSError, ValueError, KeyError, TypeError):
                pass
        return sorted(found, key=lambda candidate: candidate[0], reverse=True)  # stable: checkpoints first

    def on_train_begin(self, logs=None):
        for partial in self.write_to.glob(".*.partial.weights.h5"):  # left by a kill mid-save
            partial.unlink(missing_ok=True)
        self._check_agreed(self._resume())

    def _resume(self) -> int:
        """Load the newest checkpoint that loads -> its epoch (0: none)."""
        problems = []
        for epoch, path in self.candidates():
            try:
                self._load(path)
            except Exception as error:  # whatever a cut or foreign file raises (OSError, ValueError, KeyError)
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                problems.append(f"{path.name}: {reason}")
                self.log(f"warning: {path} does not load ({reason}); trying the checkpoint before it")
                continue
            self.model._initial_epoch = epoch  # what BackupAndRestore sets: fit starts after this epoch
            if problems:
                self.log(f"resuming from {path} (epoch {epoch})")
            return epoch
        if problems:
            raise CheckpointsUnreadable(
                f"{self.folder.parent}: no checkpoint to resume from loads ("
                f"{'; '.join(problems)}); use a new --workdir, or delete this one to start again"
            )
        return 0

    def _check_agreed(self, epoch: int) -> None:
        if self.agree is None:
            return
        epochs = sorted(set(self.agree(epoch)))
        if len(epochs) > 1:
            raise ValueError(
                f"{self.folder}: the workers would resume from different epochs ({', '.join(map(str, epochs))}); "
                "every worker must see the chief's checkpoints (one --workdir on a shared filesystem)"
            )

    def _load(self, path: Path) -> None:
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:  # as BackupAndRestore: slots before loading
            model.optimizer.build(model.trainable_variables)
        model.load_weights(str(path))

    def on_epoch_end(self, epoch, logs=None):
        self.write_to.mkdir(parents=True, exist_ok=True)
        final = self.write_to / f"epoch_{epoch + 1:03d}.weights.h5"
        partial = self.write_to / f".epoch_{epoch + 1:03d}.partial.weights.h5"  # Keras wants the .weights.h5 suffix
        self.model.save_weights(str(partial), overwrite=True)
        with open(partial, "rb") as f:  # on disk before the rename makes it the one to resume from
            os.fsync(f.fileno())
        os.replace(partial, final)
        if self.write_to != self.folder:  # a worker's own copy: the chief keeps the run's
            for _, old in self.candidates(self.write_to)[self.keep :]:
                old.unlink(missing_ok=True)
            return
        if self.legacy and self.legacy.exists():
            shutil.rmtree(self.legacy)  # older than this checkpoint
        for _, old in self.candidates()[self.keep :]:
            old.unlink(missing_ok=True)
