"""The built-in demo: synthetic corpus -> prepare -> train a small Speech2Vid -> a talking video.

    python -m keras_s2v.demo --out demo

Every step reuses what an earlier run finished (clips, prepared shards, the
training run), so running it again is quick. ``demo/`` is the demo's own
folder: its video is rewritten each run.
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags

DEMO_SENTENCE = "Look at the big red balloon. Now we can open the window."

_OUT = flags.DEFINE_string("out", "demo", "Folder for everything the demo makes.")
_EXPERIMENT = flags.DEFINE_string("experiment", "s2v_small", "Experiment to train.")
_OVERRIDE = flags.DEFINE_multi_string("override", [], "Config override, e.g. train.epochs=2.")


def run_demo(out, experiment: str = "s2v_small", overrides=(), log=print) -> dict:
    from keras_s2v import inference
    from keras_s2v.configs import experiments
    from keras_s2v.data import media, prepare, synth
    from keras_s2v.training import train_lib

    out = Path(out)
    log("1/4 synthetic corpus: 2 real portraits speaking espeak-ng sentences")
    synth.make_corpus(out / "synth", num_clips=6, seconds=4.0, seed=0, log=None)
    log("2/4 prepare: faces, 68 landmarks, alignment, MFCC -> TFRecord shards (last 20% of each clip held out)")
    config = prepare.PrepareConfig(split="train", holdout_tail=0.2)
    manifest = prepare.prepare([str(out / "synth")], out / "shards", config, workers=2, progress=False, log=log)
    log(prepare.summary_table(manifest).splitlines()[-3] if manifest["splits"] else "no data prepared")
    log(f"3/4 train {experiment}")
    config = experiments.apply_overrides(experiments.get_experiment(experiment), overrides)
    result = train_lib.train(config, out / "shards", out / "train")
    history = result["epochs"]
    log("4/4 talking video: identity computed once, 0.35 s window slid at 25 fps, audio muxed")
    portrait = out / "portrait.png"
    if not portrait.exists():
        import cv2

        cv2.imwrite(str(portrait), synth.load_portrait("astronaut").image[..., ::-1])
    speech = synth.speak(DEMO_SENTENCE, voice="en-us+f3", rate=160)
    media.write_wav(out / "speech.wav", speech.waveform)
    model = train_lib.load_trained_model(out / "train")
    crop = inference.align_photo(portrait)[0]
    frames = inference.generate_frames(model, inference.identity_faces([crop], model.num_identity_images), speech.waveform)
    video = out / "talking.mp4"
    inference.write_video(frames, video, speech.waveform, crop.shape[0], overwrite=True, progress=False)
    summary = {
        "corpus": str(out / "synth"),
        "shards": str(out / "shards"),
        "workdir": str(out / "train"),
        "video": str(video),
        "first_loss": history[0]["loss"] if history else None,
        "last_loss": history[-1]["loss"] if history else None,
        "last_val_psnr": history[-1].get("val_psnr") if history else None,
    }
    return summary


def main(argv):
    del argv
    summary = run_demo(_OUT.value, _EXPERIMENT.value, _OVERRIDE.value)
    print()
    print(f"training L1: {summary['first_loss']:.4f} (epoch 1) -> {summary['last_loss']:.4f} (last); "
          f"validation PSNR {summary['last_val_psnr']:.2f} dB")  # fmt: skip
    for key in ("corpus", "shards", "workdir", "video"):
        print(f"{key:>8}: {summary[key]}")
    print(f"    logs: tensorboard --logdir {summary['workdir']}/logs ; samples: {summary['workdir']}/samples/latest.png")


if __name__ == "__main__":
    app.run(main)
