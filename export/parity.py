"""Parity: every exported format against the Keras model on the same real inputs.

Tolerances (frames are RGB in [0, 1]; identity features are compared as
max abs error over the reference's max abs, i.e. relative to their range):

* float32 (SavedModel, TFLite float32, ONNX): max abs <= 1e-4;
* TFLite float16 (float16 weights): max abs <= 1e-2;
* TFLite int8: frame PSNR >= 30 dB against the float32 Keras frame, for the
  generator alone and for the whole on-device chain (int8 identity features
  feeding the int8 generator). Int8 identity-feature errors are reported,
  not bounded: the frames are what a user sees.

A streaming model (temporal GAN, ``generate_step``) is checked three ways:
``identity_features``; ``generate_step`` alone on the reference identity
features, zero states and each sample's window and noise (the frame and
every state output); and the chain a client runs: the format's own identity
features of the first face, then its own ``generate_step`` over all sample
windows in order (batch 1, its own states fed back), against the Keras chain
frame by frame. Int8 state outputs are reported, not bounded.

A window model (lips at a glance, ``generate_window``) is checked on each
sample's window of lip frames: on the reference identity features, and as
the chain ``identity_features -> generate_window`` with the format's own
identity features (PSNR over each whole window for int8).
"""

from __future__ import annotations

import numpy as np

from export import formats
from keras_s2v.signature_names import (
    FRAME,
    FRAMES,
    GENERATE_FRAME,
    GENERATE_FRAME_PCM,
    GENERATE_STEP,
    GENERATE_WINDOW,
    IDENTITY_FEATURES,
    NOISE,
    PCM,
    SERVING_DEFAULT,
)

MAX_ABS = {"float32": 1e-4, "float16": 1e-2}
MIN_PSNR_DB = {"int8": 30.0}


class ParityError(ValueError):
    """An exported format disagrees with the Keras model beyond its tolerance."""

    def __init__(self, failures: list[dict]):
        self.failures = failures
        lines = [
            f"{r['format']} {r['check']}: {r['metric']} {r['value']:.4g} "
            f"({'needs <=' if r['metric'] != 'psnr_db' else 'needs >='} {r['tolerance']:g})"
            for r in failures
        ]
        super().__init__("parity check failed:\n  " + "\n  ".join(lines))


def psnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """Lowest per-frame PSNR (peak 1.0) over the batch."""
    mse = np.mean((reference.astype(np.float64) - other.astype(np.float64)) ** 2, axis=tuple(range(1, reference.ndim)))
    return float(np.min(10 * np.log10(1.0 / np.maximum(mse, 1e-12))))


def _row(fmt, check, kind, reference, value, relative=False, bounded=True, image=True):
    if kind in MIN_PSNR_DB and image and not relative:
        metric, measured, tolerance = "psnr_db", psnr_db(reference, value), MIN_PSNR_DB[kind]
        ok = measured >= tolerance
    else:
        error = float(np.max(np.abs(reference - value)))
        if relative:
            error /= max(float(np.max(np.abs(reference))), 1e-12)
        metric, measured = ("max_rel_error" if relative else "max_abs_error"), error
        tolerance = MAX_ABS.get(kind)
        ok = tolerance is None or error <= tolerance
    if not bounded:
        tolerance, ok = None, True
    return {
        "format": fmt,
        "check": check,
        "kind": kind,
        "metric": metric,
        "value": measured,
        "tolerance": tolerance,
        "ok": bool(ok),
    }


def compare(
    reference, runner, kind: str, samples: dict, signature_names, state_shapes: dict | None = None
) -> list[dict]:
    """Rows of measured differences between ``runner`` and the ``reference`` runner.

    ``samples`` holds batched ``faces``, ``mfcc`` and ``pcm`` (and ``noise``
    for ``generate_step``, ``target`` for a masked model's ``identity_features``
    and ``serving_default``: each runner takes the inputs its signature names).
    The generator signatures get the reference's identity features, so each
    is checked on its own; ``chain`` runs the format's own identity features
    into its ``generate_frame_pcm``, as a client does. ``state_shapes``: what
    ``generate_step`` carries (see ``compare_streaming``).
    """
    rows = []
    ref_identity = reference.run(IDENTITY_FEATURES, samples)
    identity = runner.run(IDENTITY_FEATURES, samples)
    for key, ref in ref_identity.items():
        rows.append(
            _row(
                runner.name,
                f"{IDENTITY_FEATURES}/{key}",
                kind,
                ref,
                identity[key],
                relative=True,
                bounded=kind in MAX_ABS,
            )
        )
    for name in (GENERATE_FRAME, GENERATE_FRAME_PCM):
        if name in signature_names:
            inputs = {**samples, **ref_identity}
            rows.append(
                _row(runner.name, name, kind, reference.run(name, inputs)[FRAME], runner.run(name, inputs)[FRAME])
            )
    if GENERATE_FRAME_PCM in signature_names:
        ref_frame = reference.run(GENERATE_FRAME_PCM, {**samples, **ref_identity})[FRAME]
        frame = runner.run(GENERATE_FRAME_PCM, {**samples, **identity})[FRAME]
        rows.append(_row(runner.name, f"chain {IDENTITY_FEATURES} -> {GENERATE_FRAME_PCM}", kind, ref_frame, frame))
    if SERVING_DEFAULT in signature_names:
        rows.append(
            _row(
                runner.name,
                SERVING_DEFAULT,
                kind,
                reference.run(SERVING_DEFAULT, samples)[FRAME],
                runner.run(SERVING_DEFAULT, samples)[FRAME],
            )
        )
    if GENERATE_WINDOW in signature_names:
        ref_frames = reference.run(GENERATE_WINDOW, {**samples, **ref_identity})[FRAMES]
        frames = runner.run(GENERATE_WINDOW, {**samples, **ref_identity})[FRAMES]
        rows.append(_row(runner.name, GENERATE_WINDOW, kind, ref_frames, frames))
        frames = runner.run(GENERATE_WINDOW, {**samples, **identity})[FRAMES]
        rows.append(_row(runner.name, f"chain {IDENTITY_FEATURES} -> {GENERATE_WINDOW}", kind, ref_frames, frames))
    if GENERATE_STEP in signature_names:
        rows += compare_streaming(reference, runner, kind, samples, ref_identity, identity, state_shapes or {})
    return rows


def compare_streaming(
    reference, runner, kind: str, samples: dict, ref_identity: dict, identity: dict, state_shapes: dict
) -> list[dict]:
    """``generate_step`` rows: one step from zero states (frame and states), and the streaming chain."""
    rows = []
    count = len(samples[PCM])
    zeros = {k: np.zeros((count, *shape), np.float32) for k, shape in state_shapes.items()}
    inputs = {**samples, **ref_identity, **zeros}
    ref, out = reference.run(GENERATE_STEP, inputs), runner.run(GENERATE_STEP, inputs)
    rows.append(_row(runner.name, f"{GENERATE_STEP}/{FRAME}", kind, ref[FRAME], out[FRAME]))
    for key in state_shapes:
        rows.append(
            _row(runner.name, f"{GENERATE_STEP}/{key}", kind, ref[key], out[key], bounded=kind in MAX_ABS, image=False)
        )
    first = {k: v[:1] for k, v in ref_identity.items()}
    own = {k: v[:1] for k, v in identity.items()}
    ref_frames = formats.stream_frames(reference, first, samples[PCM], samples[NOISE], state_shapes)
    frames = formats.stream_frames(runner, own, samples[PCM], samples[NOISE], state_shapes)
    rows.append(_row(runner.name, f"chain {IDENTITY_FEATURES} -> {GENERATE_STEP} x{count}", kind, ref_frames, frames))
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'format':<22} {'check':<48} {'metric':<14} {'value':>10} {'tolerance':>10}  ok"]
    for r in rows:
        tol = "-" if r["tolerance"] is None else f"{r['tolerance']:g}"
        lines.append(
            f"{r['format']:<22} {r['check']:<48} {r['metric']:<14} {r['value']:>10.3g} {tol:>10}  "
            f"{'yes' if r['ok'] else 'NO'}"
        )
    return "\n".join(lines)
