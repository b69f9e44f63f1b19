"""The built-in demo: the shipped preset makes a real portrait talk; then the whole pipeline on built-in data.

    python -m keras_s2v.demo --out demo --android_assets android_demo_assets

1. The preset ``s2v_real`` (trained on real speakers; the portrait is none of
   them) makes ``talking.mp4``: the whole photo, the generated lower face
   blended back; exported (SavedModel, TFLite, ONNX, parity checked), its int8
   model makes ``talking_int8.mp4`` through the on-device client.
2. A synthetic corpus is rendered, prepared and a small Speech2Vid trained on
   it for a few minutes (what ``train`` does on your data), which speaks the
   same sentence (``talking_small.mp4``) and is evaluated on held-out tails.

Every step reuses what an earlier run finished (clips, prepared shards, the
training run), so running it again is quick. ``demo/`` is the demo's own
folder: its videos and export are rewritten each run, as are the generated
files in the Android assets folder (its README is never touched).
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags, logging

from keras_s2v import cli

DEMO_SENTENCE = "Look at the big red balloon. Now we can open the window."

_OUT = flags.DEFINE_string("out", "demo", "Folder for everything the demo makes.")
_EXPERIMENT = flags.DEFINE_string("experiment", "s2v_small", "Experiment to train.")
_OVERRIDE = flags.DEFINE_multi_string("override", [], "Config override, e.g. train.epochs=2.")
_PRESET = flags.DEFINE_string("preset", "s2v_real", "The shipped generator the headline videos come from.")
_ANDROID = flags.DEFINE_string("android_assets", "android_demo_assets", "Where the export writes the Android assets.")
_SYNC = flags.DEFINE_string(
    "sync_model",
    None,
    "Sync expert workdir for the evaluation's sync columns (python -m keras_s2v.train --experiment syncnet).",
)


def run_demo(
    out,
    experiment: str = "s2v_small",
    overrides=(),
    android_assets=None,
    sync_model=None,
    preset: str = "s2v_real",
    log=print,
    num_clips: int = 6,
) -> dict:
    """Run the demo into ``out``; return the summary (paths, the int8 chain's PSNR, training and evaluation).

    ``num_clips``: synthetic clips per portrait (4 s each) in the corpus the small model trains on.
    """
    from export import export_model
    from keras_s2v import inference, lite_client
    from keras_s2v.configs import experiments
    from keras_s2v.data import media, prepare, synth
    from keras_s2v.evaluation import evaluate_lib
    from keras_s2v.training import train_lib

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log(
        f"1/7 the preset {preset}: a real portrait it never saw (the astronaut) says an espeak-ng sentence; "
        "0.35 s audio window slid at 25 fps, lower face blended back into the whole photo, audio muxed"
    )
    portrait = out / "portrait.png"
    if not portrait.exists():
        import cv2

        cv2.imwrite(str(portrait), synth.load_portrait("astronaut").image[..., ::-1])
    speech = synth.speak(DEMO_SENTENCE, voice="en-us+f3", rate=160)
    media.write_wav(out / "speech.wav", speech.waveform)
    video = out / "talking.mp4"
    inference.generate_video([portrait], out / "speech.wav", preset, video, overwrite=True, progress=False)
    crop = inference.align_photo(portrait)[0]
    log("2/7 synthetic corpus: 2 real portraits speaking espeak-ng sentences")
    synth.make_corpus(out / "synth", num_clips=num_clips, seconds=4.0, seed=0, log=None)
    log("3/7 prepare: faces, 68 landmarks, alignment, MFCC -> TFRecord shards (last 20% of each clip held out)")
    config = prepare.PrepareConfig(split="train", holdout_tail=0.2)
    manifest = prepare.prepare([str(out / "synth")], out / "shards", config, workers=2, progress=False, log=log)
    log(prepare.summary_table(manifest).splitlines()[-3] if manifest["splits"] else "no data prepared")
    log(
        "4/7 export the preset: SavedModel for TF Serving, TFLite float32/float16/int8 (calibrated on the shards), "
        "ONNX, parity against Keras; the int8 model's video through the LiteRT client"
    )
    export = export_model(
        preset,
        out / "export",
        data_dir=out / "shards",
        model_name=preset,
        overwrite=True,
        android_assets=android_assets,
        sample=(crop, speech.waveform),
        log=lambda _: None,
    )
    int8_model = out / "export" / export["files"]["tflite_int8"]
    on_device = lite_client.run(
        int8_model, [portrait_crop(out, crop)], out / "speech.wav", out / "talking_int8.mp4", overwrite=True
    )
    log(f"5/7 train {experiment} on the synthetic shards (what train does with your data)")
    config = experiments.apply_overrides(experiments.get_experiment(experiment), overrides)
    result = train_lib.train(config, out / "shards", out / "train")
    history = result["epochs"]
    log("6/7 the trained model says the same sentence")
    inference.generate_video(
        [portrait], out / "speech.wav", out / "train", out / "talking_small.mp4", overwrite=True, progress=False
    )
    log(
        "7/7 evaluate the trained model on the held-out tails: PSNR, SSIM, CPBD, FDBM, LMD, ACD, blinks, mouth "
        "correlation" + (", sync" if sync_model else "") + "; baselines: still, shuffled audio, ground truth"
    )
    evaluation = evaluate_lib.evaluate(
        out / "train",
        out / "evaluation",
        data=out / "shards",
        sync_model=sync_model,
        overwrite=True,
        log=lambda _: None,
    )
    summary = {
        "corpus": str(out / "synth"),
        "shards": str(out / "shards"),
        "workdir": str(out / "train"),
        "preset": preset,
        "video": str(video),
        "video_small": str(out / "talking_small.mp4"),
        "export": str(out / "export"),
        "video_int8": str(out / "talking_int8.mp4"),
        "int8_frames_per_second": on_device["fps"],
        "int8_chain_psnr": int8_chain_psnr(export["parity"]),
        "android_assets": export.get("android_assets"),
        "first_loss": history[0]["loss"] if history else None,
        "last_loss": history[-1]["loss"] if history else None,
        "last_val_psnr": history[-1].get("val_psnr") if history else None,
        "evaluation": str(out / "evaluation" / "report.md"),
        "evaluation_summary": evaluation["summary"],
    }
    return summary


def int8_chain_psnr(rows) -> float:
    """Frame PSNR of the int8 TFLite identity + generator chain against Keras, from the parity rows."""
    return next(r["value"] for r in rows if r["format"] == "tflite_int8" and r["check"].startswith("chain"))


def portrait_crop(out: Path, crop) -> Path:
    """The aligned 112 x 112 portrait as a PNG: what the on-device client takes."""
    import cv2

    path = out / "portrait_aligned.png"
    cv2.imwrite(str(path), crop[..., ::-1])
    return path


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # converters log every graph pass at INFO

    def body():
        from keras_s2v.evaluation import report

        summary = run_demo(_OUT.value, _EXPERIMENT.value, _OVERRIDE.value, _ANDROID.value, _SYNC.value, _PRESET.value)
        lines = [
            "",
            f"{summary['preset']}: {summary['video']} (int8 TFLite: frame PSNR {summary['int8_chain_psnr']:.1f} dB "
            f"against Keras; LiteRT client {summary['int8_frames_per_second']:.0f} frames/s, ffmpeg included: "
            f"{summary['video_int8']})",
            f"trained {summary['workdir']}: training loss {summary['first_loss']:.4f} (epoch 1) -> "
            f"{summary['last_loss']:.4f} (last); validation PSNR {summary['last_val_psnr']:.2f} dB",
            "",
            report.markdown_table(summary["evaluation_summary"]),
            "",
        ]
        lines += [
            f"{key:>14}: {summary[key]}"
            for key in (
                "video",
                "video_int8",
                "export",
                "android_assets",
                "corpus",
                "shards",
                "workdir",
                "video_small",
                "evaluation",
            )
        ]
        lines.append(
            f"          logs: tensorboard --logdir {summary['workdir']}/logs ; "
            f"samples: {summary['workdir']}/samples/latest.png"
        )
        return "\n".join(lines)

    return cli.run_main(body)


if __name__ == "__main__":
    app.run(main)
