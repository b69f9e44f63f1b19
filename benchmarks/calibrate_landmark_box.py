"""Fit the BlazeFace-box -> dlib-HOG-box mappings used by keras_s2v.data.face.landmarks.

dlib's 68-point predictor expects boxes like those of dlib's HOG detector. On the
real stills and on frames sampled from every clip in $KERAS_S2V_MEDIA this
script runs the HOG detector and both BlazeFace models on the same images,
pairs the detections, and fits

  * BLAZEFACE_TO_DLIB_BOX[model]: HOG centre = BlazeFace centre + (dx, dy) * width,
    HOG side = size * width (dx, dy means; size the geometric mean ratio);
  * LANDMARKS_TO_DLIB_BOX: the same relation from dlib's own landmarks
    (eye/mouth reference, see landmark_reference) used for the refinement pass.

It prints the fitted constants, their leave-one-source-out residuals, and how
far the landmarks from BlazeFace + mapped box (first pass, and after the
refinement pass) are from the landmarks of the original HOG + predictor
pipeline, using the constants currently hard-coded in the library.

    KERAS_S2V_MEDIA=/path/to/media python benchmarks/calibrate_landmark_box.py
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_s2v.data.face.detect import BlazeFaceDetector, Detection, DlibHogDetector
from keras_s2v.data.face.landmark_scheme import LEFT_EYE, RIGHT_EYE
from keras_s2v.data.face.landmarks import (
    BLAZEFACE_TO_DLIB_BOX,
    LANDMARKS_TO_DLIB_BOX,
    LandmarkPredictor,
    dlib_box_from_blazeface,
    dlib_box_from_landmarks,
    landmark_reference,
)
from keras_s2v.data.face.models import install_models

FRAMES_PER_CLIP = 11
MODELS = ("full_range", "short_range")


def media_dir() -> Path:
    return Path(os.environ.get("KERAS_S2V_MEDIA", Path(__file__).resolve().parents[1].parent / "shared" / "media"))


def images(media: Path) -> Iterator[tuple[str, str, np.ndarray]]:
    """(source, name, RGB image): every still and evenly spaced frames of every clip."""
    for path in sorted((media / "stills").glob("*")):
        bgr = cv2.imread(str(path))
        if bgr is not None:
            yield path.name, path.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    for path in sorted((media / "clips").glob("*.mp4")):
        cap = cv2.VideoCapture(str(path))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for k in np.linspace(0, n - 1, FRAMES_PER_CLIP + 1).astype(int)[:-1]:
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(k))
            ok, bgr = cap.read()
            if ok:
                yield path.name, f"{path.name}#{k}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        cap.release()


def centre_side(box: tuple[float, float, float, float] | np.ndarray) -> tuple[float, float, float]:
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2, ((x1 - x0) + (y1 - y0)) / 2


def match(hog: Detection, dets: list[Detection]) -> Detection | None:
    """Best-scoring BlazeFace detection whose centre is near the HOG box centre."""
    hx, hy, hs = centre_side(hog.box)
    near = [d for d in dets if np.hypot(*(np.array(centre_side(d.box)[:2]) - (hx, hy))) < 0.3 * hs]
    return max(near, key=lambda d: d.score) if near else None


def fit(ref: np.ndarray, length: np.ndarray, target: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Fit centre offset/size of target boxes (N, 3: cx, cy, side) relative to ref (N, 2) and length.

    Returns the constants, in-sample and leave-one-source-out RMS residuals
    (centre distance and side error, as fractions of the target side).
    """
    tx = (target[:, 0] - ref[:, 0]) / length
    ty = (target[:, 1] - ref[:, 1]) / length
    ls = np.log(target[:, 2] / length)

    def residual(dx: np.ndarray, dy: np.ndarray, size: np.ndarray) -> tuple[float, float]:
        pc = ref + np.stack([dx, dy], 1) * length[:, None]
        c = np.linalg.norm(pc - target[:, :2], axis=1) / target[:, 2]
        s = size * length / target[:, 2] - 1
        return float(np.sqrt(np.mean(c**2))), float(np.sqrt(np.mean(s**2)))

    n = len(tx)
    full = (np.full(n, tx.mean()), np.full(n, ty.mean()), np.full(n, np.exp(ls.mean())))
    loso = [np.empty(n), np.empty(n), np.empty(n)]
    for g in np.unique(groups):
        m = groups == g
        loso[0][m], loso[1][m], loso[2][m] = tx[~m].mean(), ty[~m].mean(), np.exp(ls[~m].mean())
    c_in, s_in = residual(*full)
    c_cv, s_cv = residual(*loso)
    return {
        "dx": float(tx.mean()),
        "dy": float(ty.mean()),
        "size": float(np.exp(ls.mean())),
        "centre_rms": c_in,
        "side_rms": s_in,
        "centre_rms_loso": c_cv,
        "side_rms_loso": s_cv,
    }


def main() -> int:
    media = media_dir()
    if not (media / "stills").is_dir():
        print(f"media not found at {media}; set KERAS_S2V_MEDIA", file=sys.stderr)
        return 1
    install_models()
    hog = DlibHogDetector(upsample=0, max_side=1024)
    blaze = {m: BlazeFaceDetector(m, min_score=0.3) for m in MODELS}
    predictor = LandmarkPredictor()

    samples = []  # (source, image index, hog box, hog landmarks, {model: detection})
    frames: list[np.ndarray] = []
    for source, _, image in images(media):
        hog_dets = hog.detect(image)
        if not hog_dets:
            continue
        frames.append(image)
        found = {m: d.detect(image) for m, d in blaze.items()}
        for h in hog_dets:
            samples.append(
                (
                    source,
                    len(frames) - 1,
                    np.array(h.box),
                    predictor.predict(image, h.box),
                    {m: match(h, found[m]) for m in MODELS},
                )
            )
    print(f"{len(samples)} HOG faces in {len(frames)} images from {len({s[0] for s in samples})} sources")

    print("\nBLAZEFACE_TO_DLIB_BOX (reference: BlazeFace box centre; length: its width)")
    for model in MODELS:
        rows = [s for s in samples if s[4][model] is not None]
        b = np.array([s[4][model].box for s in rows])
        target = np.array([centre_side(s[2]) for s in rows])
        r = fit(
            np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1),
            b[:, 2] - b[:, 0],
            target,
            np.array([s[0] for s in rows]),
        )
        print(
            f'  "{model}": BoxMapping(dx={r["dx"]:.4f}, dy={r["dy"]:.4f}, size={r["size"]:.4f}),'
            f"   # n={len(rows)}; RMS centre {r['centre_rms']:.3f} side {r['side_rms']:.3f}"
            f" (LOSO {r['centre_rms_loso']:.3f} / {r['side_rms_loso']:.3f}) of HOG side"
        )

    refs = np.array([landmark_reference(s[3]) for s in samples])
    r = fit(refs[:, :2], refs[:, 2], np.array([centre_side(s[2]) for s in samples]), np.array([s[0] for s in samples]))
    print("\nLANDMARKS_TO_DLIB_BOX (reference: eyes+mouth centre; length: hypot(eye dist, eye-mouth dist))")
    print(
        f"  BoxMapping(dx={r['dx']:.4f}, dy={r['dy']:.4f}, size={r['size']:.4f})"
        f"   # RMS centre {r['centre_rms']:.3f} side {r['side_rms']:.3f}"
        f" (LOSO {r['centre_rms_loso']:.3f} / {r['side_rms_loso']:.3f}) of HOG side"
    )

    print("\nLandmark agreement with the HOG + predictor pipeline, using the library's constants:")
    print(f"  {BLAZEFACE_TO_DLIB_BOX}\n  {LANDMARKS_TO_DLIB_BOX}")
    for model in MODELS:
        err: dict[str, list[float]] = {"pass 1": [], "pass 2 (refined)": []}
        iods = []
        for _, idx, _, ref_lm, dets in samples:
            det = dets[model]
            if det is None:
                continue
            image = frames[idx]
            lm1 = predictor.predict(image, dlib_box_from_blazeface(det.box, model))
            lm2 = predictor.predict(image, dlib_box_from_landmarks(lm1))
            err["pass 1"].append(float(np.linalg.norm(lm1 - ref_lm, axis=1).mean()))
            err["pass 2 (refined)"].append(float(np.linalg.norm(lm2 - ref_lm, axis=1).mean()))
            iods.append(float(np.linalg.norm(ref_lm[LEFT_EYE].mean(0) - ref_lm[RIGHT_EYE].mean(0))))
        iod = np.array(iods)
        for name, e in err.items():
            ea = np.array(e)
            print(
                f"  {model:11s} {name:16s} mean {ea.mean():.2f} px, median {np.median(ea):.2f} px; "
                f"/inter-ocular: mean {np.mean(ea / iod):.4f}, p95 {np.percentile(ea / iod, 95):.4f}, "
                f"max {np.max(ea / iod):.4f}  (n={len(ea)})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
