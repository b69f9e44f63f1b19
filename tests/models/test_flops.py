"""FLOP counter: hand-computed layer counts, nested models, TF's profiler, the paper vs the phone-sized model."""

import keras
import pytest

from keras_s2v.configs.experiments import get_experiment
from keras_s2v.models.deblur import DeblurCNN
from keras_s2v.models.flops import count_flops, generator_flops
from keras_s2v.training.train_lib import build_model

# One sample through the small model below, by hand (2 FLOPs per multiply-add).
HAND = {
    "conv": 2 * 8 * 8 * 9 * 4 * 8,  # 3 x 3, same: (8, 8, 4) -> (8, 8, 8)
    "dw": 2 * 4 * 4 * 8 * 9,  # 3 x 3 depthwise, stride 2: -> (4, 4, 8)
    "sep": 2 * 2 * 2 * 8 * 9 + 2 * 2 * 2 * 8 * 6,  # 3 x 3 valid separable: -> (2, 2, 6)
    "deconv": 2 * 2 * 2 * 6 * 16 * 5,  # 4 x 4 transposed, stride 2, from (2, 2, 6): -> (4, 4, 5)
    "dense": 2 * 80 * 7,  # flatten (4 * 4 * 5) -> 7
}


def _small_model(batch_size=None):
    x = inputs = keras.Input((8, 8, 4), batch_size=batch_size, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(x)
    x = keras.layers.BatchNormalization(name="conv_bn")(x)  # not counted: folds into the conv
    x = keras.layers.ReLU(name="conv_relu")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, name="dw")(x)
    x = keras.layers.SeparableConv2D(6, 3, padding="valid", use_bias=False, name="sep")(x)
    x = keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same", use_bias=False, name="deconv")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(7, use_bias=False, name="dense")(x)
    return keras.Model(inputs, outputs, name="small")


def test_each_layer_kind_matches_the_hand_count():
    flops = count_flops(_small_model())
    assert flops["layers"] == HAND
    assert flops["total"] == sum(HAND.values()) == 45_088


def test_nested_models_are_counted_through_their_layers():
    inner = _small_model()
    x = keras.Input((8, 8, 4), name="outer_image")
    y = keras.layers.Dense(3, name="head")(inner(x))
    flops = count_flops(keras.Model(x, y))
    assert flops["layers"] == {**{f"small/{k}": v for k, v in HAND.items()}, "head": 2 * 7 * 3}


def test_one_and_three_dimensional_convolutions():
    x = inputs = keras.Input((16, 2), name="wave")
    x = keras.layers.Conv1D(4, 3, strides=2, padding="same", name="conv1d")(x)  # -> (8, 4)
    x = keras.layers.Conv1DTranspose(2, 4, strides=2, padding="same", name="deconv1d")(x)  # (8, 4) -> (16, 2)
    clip = keras.Input((4, 6, 6, 2), name="clip")
    y = keras.layers.Conv3D(3, 3, padding="same", name="conv3d")(clip)  # -> (4, 6, 6, 3)
    y = keras.layers.Conv3DTranspose(2, (3, 4, 4), strides=(1, 2, 2), padding="same", name="deconv3d")(y)
    flops = count_flops(keras.Model([inputs, clip], [x, y]))["layers"]
    assert flops == {
        "conv1d": 2 * 8 * 4 * 3 * 2,  # out positions x C_out x k x C_in
        "deconv1d": 2 * 8 * 4 * 4 * 2,  # in positions x C_in x k x C_out
        "conv3d": 2 * (4 * 6 * 6) * 3 * 27 * 2,
        "deconv3d": 2 * (4 * 6 * 6) * 3 * (3 * 4 * 4) * 2,  # -> (4, 12, 12, 2)
    }


def test_a_model_over_time_steps_counts_once_per_step():
    x = keras.Input((3, 8, 8, 4), name="frames")
    y = keras.layers.TimeDistributed(_small_model(), name="per_frame")(x)
    flops = count_flops(keras.Model(x, y))
    assert flops["layers"] == {f"per_frame/{k}": 3 * v for k, v in HAND.items()}


def test_unknown_spatial_size_is_refused():
    with pytest.raises(ValueError, match="unknown dimensions"):
        count_flops(DeblurCNN(depth=3, filters=8, image_size=None))


def test_agrees_with_tensorflows_profiler():
    """TF's own per-op FLOP statistics on the frozen graph, counting the same op kinds."""
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants

    model = _small_model(batch_size=1)
    function = tf.function(lambda image: model(image, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec((1, 8, 8, 4)))
    graph = convert_to_constants.convert_variables_to_constants_v2(concrete).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    # The model's transposed convolution pads "same": there TF's output-based formula agrees (see flops.py).
    kinds = ["Conv2D", "Conv2DBackpropInput", "DepthwiseConv2dNative", "MatMul"]
    options.update(output="none", account_type_regexes=kinds)
    profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
    assert profile.total_float_ops == count_flops(model)["total"]


def test_paper_and_mobile_generators():
    paper_model = build_model(get_experiment("s2v"))
    paper = generator_flops(paper_model)
    mobile_model = build_model(get_experiment("s2v_mobile"))
    mobile = generator_flops(mobile_model)
    for flops in (paper, mobile):
        assert flops["full_model"] == flops["identity_encoder"] + flops["frame_generator"]
    # The paper's decoder, by hand: conv14 sees deconv14 (256) + skip_14 (256); deconv6 grows 1 x 1 -> 6 x 6.
    layers = count_flops(paper_model.decoder)["layers"]
    assert layers["conv14"] == 2 * 14 * 14 * 256 * 9 * 512
    assert layers["deconv6"] == 2 * 1 * 1 * 512 * 6 * 6 * 512
    assert 2.0e9 < paper["frame_generator"] < 2.3e9 and 0.7e9 < paper["identity_encoder"] < 0.85e9
    # The phone budget: at most 1 GFLOP per frame; sized to about a fifth of it.
    assert mobile["frame_generator"] <= 1e9
    assert 0.15e9 < mobile["frame_generator"] < 0.3e9
    assert mobile["full_model"] < paper["full_model"] / 5
    # The transposed convolutions (kept standard) are most of what is left.
    decoder = count_flops(mobile_model.decoder)["layers"]
    assert sum(v for k, v in decoder.items() if k.startswith("deconv")) > 0.7 * mobile["frame_generator"]
