"""The evaluation report: ``report.json``, ``report.md`` (methods x metrics, mean +- std over clips) and plots.

    report.json                 everything: summary, per-clip metrics and series
    report.md                   the table, and how to read it
    plots/mouth_<clip>.png      mouth opening over time, each method against the real clip
    plots/sync_<clip>.png       the sync expert's distance over audio offsets, per method
    contact_sheet.png           frames of the first clips: real | model | shuffled audio

The methods and metrics it names (``METHODS``, ``METRICS``) are defined here; ``evaluate_lib`` computes them.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

MODEL, STILL, SHUFFLED, TRUTH = "model", "still", "shuffled audio", "ground truth"
METHODS = (MODEL, STILL, SHUFFLED, TRUTH)

# name -> (label in the table, format, higher is better?)
METRICS = {
    "psnr": ("PSNR dB", ".2f", True),
    "ssim": ("SSIM", ".3f", True),
    "psnr_lower": ("PSNR lower dB", ".2f", True),
    "ssim_lower": ("SSIM lower", ".3f", True),
    "psnr_lips": ("PSNR lips dB", ".2f", True),
    "ssim_lips": ("SSIM lips", ".3f", True),
    "cpbd": ("CPBD", ".3f", True),
    "cpbd_lips": ("CPBD lips", ".3f", True),
    "fdbm": ("FDBM", ".4f", True),
    "lmd": ("LMD px", ".2f", False),
    "acd": ("ACD", ".3f", False),
    "sync_offset": ("AV offset fr", ".1f", None),
    "sync_abs_offset": ("|offset| fr", ".1f", False),
    # 1 when the offset is within one frame of the real clip's own (clips are rarely in sync to the frame)
    "sync_in_sync": ("in sync ±1 fr", ".2f", True),
    "sync_distance": ("LSE-D", ".3f", False),
    "sync_confidence": ("LSE-C", ".3f", True),
    "blinks_per_minute": ("blinks/min", ".1f", None),
    "silence_jitter": ("silence jitter px", ".2f", False),
    "mouth_correlation": ("mouth corr", ".3f", True),
}

COLOURS = {TRUTH: "black", MODEL: "tab:blue", STILL: "tab:grey", SHUFFLED: "tab:orange"}
SHEET_CLIPS = 4
SHEET_FRAMES = 8

REPORT_JSON = "report.json"  # also marks a folder as a report, which --overwrite may replace


def _json_safe(value):
    """inf/nan -> strings (JSON has neither); arrays -> lists."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def format_cell(stats: dict | None, fmt: str) -> str:
    if stats is None:
        return "–"
    if math.isinf(stats["mean"]):
        return "∞"
    return f"{stats['mean']:{fmt}} ± {stats['std']:{fmt}}"


def markdown_table(summary: dict) -> str:
    """One row per method, one column per metric reported for any method."""
    names = [n for n in METRICS if any(n in summary.get(m, {}) for m in METHODS)]
    header = "| method | " + " | ".join(METRICS[n][0] + _arrow(METRICS[n][2]) for n in names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for method in METHODS:
        if method in summary:
            cells = [format_cell(summary[method].get(n), METRICS[n][1]) for n in names]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _arrow(higher_is_better) -> str:
    return "" if higher_is_better is None else (" ↑" if higher_is_better else " ↓")


def markdown(result: dict) -> str:
    data = result["data"] if isinstance(result["data"], str) else ", ".join(result["data"])
    split = f", split {result['split']}" if result.get("split") else ""
    lines = [
        "# Evaluation",
        "",
        f"Model: `{result['backend']}`. Data: `{data}`{split}: {result['clips']} clips, {result['frames']} frames. "
        f"Sync expert: `{result['sync_model'] or 'none (no sync columns)'}`.",
        "",
        "Mean ± std over clips. Each clip is generated from its first frame and its own audio; "
        "`still` repeats that frame, `shuffled audio` drives the model with another clip's audio, "
        "`ground truth` is the real clip.",
        "",
        markdown_table(result["summary"]),
        "",
        "- PSNR / SSIM: against the real aligned frames (112 px), whole face, lower half and lip box "
        "(the 56 px mouth box lips-at-a-glance generates); ∞ for identical frames.",
        "- CPBD (Narvekar & Karam 2011), FDBM (De & Masilamani 2013): sharpness, higher is sharper.",
        "- LMD: mouth landmark distance after aligning the mean points (Chen et al. 2018), pixels of the 112 px crop.",
        "- ACD: distance of dlib face descriptors between the identity still and the frames (same person < 0.6).",
        "- AV offset, LSE-D, LSE-C: the sync expert's best audio offset (frames), minimum distance and "
        "confidence (median - minimum over offsets ±15), judged against the clip's real audio.",
        "- blinks/min: from the eye aspect ratio; mouth corr: correlation of mouth opening with the real clip's.",
        "",
        "Plots: `plots/mouth_*.png`, `plots/sync_*.png`, `contact_sheet.png`.",
        "",
    ]
    return "\n".join(lines)


def _safe_name(clip_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", clip_id)[-80:]


def plot_mouth(path: Path, clip: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    series = clip["series"]
    real = series[TRUTH]["real_mouth_opening"]
    seconds = np.arange(len(real)) / 25.0
    ax.plot(seconds, real, color=COLOURS[TRUTH], lw=2, label="real")
    for method in (MODEL, SHUFFLED, STILL):
        if method in series:
            ax.plot(seconds, series[method]["mouth_opening"], color=COLOURS[method], lw=1.2, label=method)
    ax.set_xlabel("seconds")
    ax.set_ylabel("mouth opening / eye distance")
    ax.set_title(clip["clip"], fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_sync(path: Path, clip: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    for method in METHODS:
        sync = clip["series"].get(method, {}).get("sync")
        if sync is not None:
            ax.plot(sync["offsets"], sync["distances"], color=COLOURS[method], marker=".", label=method)
    ax.axvline(0, color="k", lw=0.5, ls=":")
    ax.set_xlabel("audio offset (frames)")
    ax.set_ylabel("mean embedding distance")
    ax.set_title(clip["clip"], fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def contact_sheet(path: Path, sheets) -> None:
    """Rows: for each of the first clips, real | model | shuffled audio, ``SHEET_FRAMES`` evenly spaced frames."""
    import cv2

    rows = []
    for _, frames in sheets[:SHEET_CLIPS]:
        n = len(frames[TRUTH])
        picks = np.linspace(0, n - 1, min(SHEET_FRAMES, n)).astype(int)
        for method in (TRUTH, MODEL, SHUFFLED):
            row = np.concatenate([frames[method][i] for i in picks], axis=1)
            label = np.zeros((row.shape[0], 110, 3), np.uint8)
            cv2.putText(label, method, (4, row.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
            rows.append(np.concatenate([label, row], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    cv2.imwrite(str(path), np.concatenate(rows, axis=0)[..., ::-1])


def write_report(folder: Path, result: dict, sheets) -> None:
    folder = Path(folder)
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    for clip in result["per_clip"]:
        name = _safe_name(clip["clip"])
        plot_mouth(folder / "plots" / f"mouth_{name}.png", clip)
        if any("sync" in clip["series"].get(m, {}) for m in METHODS):
            plot_sync(folder / "plots" / f"sync_{name}.png", clip)
    contact_sheet(folder / "contact_sheet.png", sheets)
    (folder / REPORT_JSON).write_text(json.dumps(_json_safe(result), indent=1) + "\n")
    (folder / "report.md").write_text(markdown(result))
