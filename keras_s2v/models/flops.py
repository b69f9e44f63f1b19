"""FLOPs of Keras functional models, counted from layer shapes (no tracing, no profiler).

A FLOP here is half a multiply-accumulate: each layer below counts 2 x its
multiply-adds for one sample (batch 1). Only the layers that hold the work are
counted:

* ``Conv2D``: out_h x out_w x C_out x (k_h k_w C_in / groups); ``Conv1D`` and
  ``Conv3D`` alike over their one or three axes.
* ``DepthwiseConv2D``: out_h x out_w x C_in m x k_h k_w (m = depth multiplier).
* ``SeparableConv2D``: its depthwise part plus out_h x out_w x C_in m x C_out.
* ``Conv2DTranspose``: in_h x in_w x C_in x k_h k_w C_out: every input value
  is scattered through the whole kernel (what a transposed convolution
  computes, before cropping to the output; fvcore counts it so). TF's
  profiler uses out_h x out_w x C_in k_h k_w C_out / stride^2 instead, the
  same for "same" padding but an overcount for "valid" ones that grow the map
  (the decoder's 1 x 1 -> 6 x 6 ``deconv6``: 36 times). ``Conv1DTranspose``
  and ``Conv3DTranspose`` alike.
* ``Dense``: the output's positions x C_in x units.
* ``TimeDistributed`` around a model: the model's FLOPs x the time steps.

Biases, BatchNorm, activations, pooling, concatenation and reshapes are left
out: they are a small share of the work, and BatchNorm folds into the
preceding convolution's weights when the model is exported for inference
(TFLite, SavedModel with constant folding). Nested models are counted through
their own layers, under ``outer/inner`` names; a layer shared by several calls
inside one model counts once.

Per sample means per row of the layer's batch: a layer that runs on frames
folded into the batch (``(B T, ...)``) is counted once per frame, and the
caller multiplies by T. Recurrent layers (GRU) are not counted either.
"""

from __future__ import annotations

import math

import keras


def _spatial(shape, layer) -> tuple[int, ...]:
    """Per-sample dimensions (batch dropped); every one must be known."""
    dims = tuple(shape[1:])
    if any(d is None for d in dims):
        raise ValueError(f"layer {layer.name!r}: shape {tuple(shape)} has unknown dimensions; build with fixed sizes")
    return dims


def layer_flops(layer) -> int:
    """FLOPs of one (non-model) layer for one sample; 0 for layers that are not counted."""
    L = keras.layers
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        *space, c_in = _spatial(layer.input.shape, layer)
        return 2 * math.prod(space) * c_in * math.prod(layer.kernel_size) * layer.filters
    if isinstance(layer, L.SeparableConv2D):
        out_h, out_w, c_out = _spatial(layer.output.shape, layer)
        c_in = _spatial(layer.input.shape, layer)[-1]
        k_h, k_w = layer.kernel_size
        mid = c_in * layer.depth_multiplier
        return 2 * out_h * out_w * (mid * k_h * k_w + mid * c_out)
    if isinstance(layer, L.DepthwiseConv2D):
        out_h, out_w, c_out = _spatial(layer.output.shape, layer)  # c_out = C_in x depth multiplier
        k_h, k_w = layer.kernel_size
        return 2 * out_h * out_w * c_out * k_h * k_w
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        *space, c_out = _spatial(layer.output.shape, layer)
        c_in = _spatial(layer.input.shape, layer)[-1]
        return 2 * math.prod(space) * c_out * math.prod(layer.kernel_size) * (c_in // layer.groups)
    if isinstance(layer, L.Dense):
        out = _spatial(layer.output.shape, layer)
        c_in = _spatial(layer.input.shape, layer)[-1]
        return 2 * math.prod(out) * c_in
    return 0


def count_flops(model: keras.Model) -> dict:
    """{"total": FLOPs per sample, "layers": {name: FLOPs}} for the counted layers, in graph order.

    Nested models are entered; their layers appear as ``model_name/layer_name``, those of a model
    inside ``TimeDistributed`` as ``wrapper_name/layer_name``, times the steps.
    """
    layers: dict[str, int] = {}

    def visit(m: keras.Model, prefix: str):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                visit(layer, f"{prefix}{layer.name}/")
                continue
            if isinstance(layer, keras.layers.TimeDistributed) and isinstance(layer.layer, keras.Model):
                steps = _spatial(layer.output.shape, layer)[0]
                for name, flops in count_flops(layer.layer)["layers"].items():
                    layers[f"{prefix}{layer.name}/{name}"] = steps * flops
                continue
            flops = layer_flops(layer)
            if flops:
                layers[f"{prefix}{layer.name}"] = flops

    visit(model, "")
    return {"total": sum(layers.values()), "layers": layers}


def generator_flops(model) -> dict[str, int]:
    """FLOPs per frame (batch 1) of a ``Speech2Vid``'s parts as they run at inference.

    ``identity_encoder`` runs once per face, ``frame_generator`` (audio encoder +
    decoder) once per video frame, ``full_model`` is both, as in training.
    """
    return {
        "identity_encoder": count_flops(model.identity_encoder)["total"],
        "frame_generator": count_flops(model.frame_generator())["total"],
        "full_model": count_flops(model)["total"],
    }
