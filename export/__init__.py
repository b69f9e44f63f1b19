"""Export of trained generators (Speech2Vid; temporal GANs as streaming steps) for TF Serving, TFLite (LiteRT) and ONNX.

    python -m export --workdir TRAIN_DIR --out DIR [--formats saved_model,tflite,onnx]
                     [--quantize float32,float16,int8] [--android_assets android_demo_assets/]

Kept apart from training: this package imports ``keras_s2v``, never the reverse.
"""

# Loaded on first use (PEP 562), so ``python -m export`` parses its flags and handles Ctrl-C before TensorFlow loads.
_LAZY = {"ExportError": "export.exporter", "export_model": "export.exporter", "ParityError": "export.parity"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
