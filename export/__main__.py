"""``python -m export``: a thin absl main over ``export.exporter.export_model`` (Speech2Vid, temporal GAN and
lips-at-a-glance workdirs)."""

from __future__ import annotations

from absl import app, flags, logging

from keras_s2v import cli

_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Training workdir (python -m keras_s2v.train --workdir) of a Speech2Vid, "
    "temporal GAN (streaming) or lips-at-a-glance (windowed) experiment.",
    required=True,
)
_OUT = flags.DEFINE_string("out", None, "Output folder (must be new or empty, unless --overwrite).", required=True)
_FORMATS = flags.DEFINE_string("formats", "saved_model,tflite,onnx", "Comma-separated: saved_model, tflite, onnx.")
_QUANTIZE = flags.DEFINE_string("quantize", "float32,float16,int8", "TFLite variants: float32, float16, int8.")
_DATA = flags.DEFINE_string(
    "data", None, "Prepared shards for int8 calibration and parity (default: the ones training used)."
)
_MODEL_NAME = flags.DEFINE_string(
    "model_name", None, "Name in serving/<name>/<version> (default: the experiment name)."
)
_VERSION = flags.DEFINE_integer("version", 1, "TF Serving model version.")
_ANDROID = flags.DEFINE_string(
    "android_assets",
    None,
    "Also write the int8 and float16 models, metadata, a sample face "
    "and speech clip and golden frames into this folder.",
)
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace a non-empty --out and existing Android assets.")
_CALIBRATION = flags.DEFINE_integer("calibration_samples", 64, "Training examples to calibrate int8 on.")
cli.check_flags("version", "calibration_samples", at_least=1)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # converters log every graph pass at INFO

    def body():
        from export.exporter import export_model

        report = export_model(
            _WORKDIR.value,
            _OUT.value,
            _FORMATS.value,
            _QUANTIZE.value,
            _DATA.value,
            _MODEL_NAME.value,
            _VERSION.value,
            _OVERWRITE.value,
            _ANDROID.value,
            _CALIBRATION.value,
        )
        lines = [
            f"exported to {report['out']}: {', '.join(sorted(report['files']))}; "
            f"parity passed ({len(report['parity'])} checks)"
        ]
        if report.get("android_assets"):
            lines.append(f"Android assets in {report['android_assets']}")
        return "\n".join(lines)

    return cli.run_main(body)  # ExportError and ParityError are ValueErrors


if __name__ == "__main__":
    app.run(main)
