"""Export of trained generators (Speech2Vid; temporal GANs as streaming steps) for TF Serving, TFLite (LiteRT) and ONNX.

    python -m export --workdir TRAIN_DIR --out DIR [--formats saved_model,tflite,onnx]
                     [--quantize float32,float16,int8] [--android_assets android_demo_assets/]

Kept apart from training: this package imports ``keras_s2v``, never the reverse.
"""

from export.exporter import ExportError, export_model  # noqa: F401
from export.parity import ParityError  # noqa: F401
