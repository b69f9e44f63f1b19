"""``python -m keras_s2v.lite_client``: the reference on-device client as a command (the library is ``__init__.py``)."""

from __future__ import annotations

from keras_s2v import cli, lite_client


def main(argv):
    del argv
    from absl import flags

    f = flags.FLAGS

    def body():
        if not f.face:
            raise ValueError("give the aligned face crop with --face IMAGE")
        result = lite_client.run(f.model, f.face, f.audio, f.out, f.threads, f.overwrite)
        return (
            f"wrote {f.out}: {result['frames']} frames in {result['seconds']:.2f} s ({result['fps']:.1f} frames/s, "
            "ffmpeg included)"
        )

    return cli.run_main(body)


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("model", None, "Exported .tflite (python -m export).", required=True)
    flags.DEFINE_multi_string(
        "face",
        [],
        "Aligned square face crop (repeat for a 5-image model; a masked-target "
        "model also takes the first as the frame being made).",
    )
    flags.DEFINE_string("audio", None, "Speech recording.", required=True)
    flags.DEFINE_string("out", None, "Output video (.mp4).", required=True)
    flags.DEFINE_integer("threads", None, "Interpreter threads (default: LiteRT's choice).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output.")
    cli.check_flags("threads", at_least=1)
    app.run(main)
