"""Speech2Vid and deblur models: shapes, sizes, config and save/reload round trips, the export split."""

import keras
import numpy as np
import pytest

from keras_s2v.models.deblur import DeblurCNN
from keras_s2v.models.speech2vid import Speech2Vid, Speech2VidAudioEncoder, Speech2VidDecoder, Speech2VidIdentityEncoder


def _inputs(batch=2, images=1, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "faces": rng.random((batch, 112, 112, 3 * images), dtype=np.float32),
        "mfcc": rng.normal(size=(batch, 12, 35)).astype(np.float32),
    }


def test_paper_sized_parts_have_the_papers_shapes():
    audio = Speech2VidAudioEncoder()
    assert audio.get_layer("pool5").output.shape[1:] == (5, 8, 256)  # fc6 is a 5 x 8 valid conv
    assert audio.output.shape[1:] == (256,)
    identity = Speech2VidIdentityEncoder()
    assert identity.get_layer("pool2").output.shape[1:] == (6, 6, 256)  # fc6 is a 6 x 6 valid conv
    assert {k: tuple(v.shape[1:]) for k, v in identity.output.items()} == {
        "identity": (256,),
        "skip_14": (14, 14, 256),
        "skip_6": (6, 6, 512),
    }
    five = Speech2VidIdentityEncoder(num_images=5)
    # Five stacked faces change only the first convolution.
    assert five.count_params() - identity.count_params() == 7 * 7 * 12 * 96
    model = Speech2Vid()
    assert model.count_params() == 41_133_287
    assert Speech2Vid(skip_connections=False).count_params() < model.count_params()


@pytest.mark.parametrize("images, skips", [(1, True), (5, True), (1, False)])
def test_forward_shapes_and_range(images, skips):
    model = Speech2Vid(num_identity_images=images, width=0.125, embedding_dim=32, skip_connections=skips)
    frame = np.asarray(model(_inputs(images=images)))
    assert frame.shape == (2, 112, 112, 3)
    assert frame.min() >= 0 and frame.max() <= 1


def test_config_round_trip_gives_equal_outputs():
    model = Speech2Vid(num_identity_images=5, width=0.125, embedding_dim=32, skip_connections=False)
    config = model.get_config()
    assert {k: config[k] for k in ("num_identity_images", "width", "embedding_dim", "skip_connections")} == {
        "num_identity_images": 5,
        "width": 0.125,
        "embedding_dim": 32,
        "skip_connections": False,
    }
    clone = Speech2Vid.from_config(config)
    clone.set_weights(model.get_weights())
    x = _inputs(images=5)
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(model(x)))
    for part in (Speech2VidAudioEncoder(0.125, 32), Speech2VidDecoder(0.125, 32, False), DeblurCNN(3, 8)):
        assert type(part).from_config(part.get_config()).get_config() == part.get_config()


def test_keras_file_save_and_reload(tmp_path):
    model = Speech2Vid(width=0.125, embedding_dim=32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = _inputs()
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    assert isinstance(loaded, Speech2Vid) and loaded.frame_generator() is not None


def test_frame_generator_reproduces_the_full_model():
    """Identity computed once + per-window generator == the whole model (what export serves)."""
    model = Speech2Vid(width=0.125, embedding_dim=32)
    x = _inputs(batch=3)
    identity = {k: np.asarray(v) for k, v in model.identity_encoder(x["faces"]).items()}
    generator = model.frame_generator()
    frame = generator({**identity, "mfcc": x["mfcc"]})
    np.testing.assert_allclose(np.asarray(frame), np.asarray(model(x)), atol=1e-6)
    assert set(generator.input) == {"identity", "skip_14", "skip_6", "mfcc"}
    noskip = Speech2Vid(width=0.125, embedding_dim=32, skip_connections=False)
    assert set(noskip.frame_generator().input) == {"identity", "mfcc"}


def test_deblur_starts_as_identity_and_keeps_range():
    model = DeblurCNN(depth=4, filters=8)
    image = np.random.default_rng(0).random((2, 112, 112, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(image)), image, atol=1e-6)  # zero-initialised residual
    assert (
        DeblurCNN(depth=10, filters=64).count_params()
        == 3 * 3 * 3 * 64 + 64 + 8 * (3 * 3 * 64 * 64 + 64) + 3 * 3 * 64 * 3 + 3
    )


def _shapes(model: keras.Model) -> dict:
    """Every input and output of the model and of its parts, by name."""
    parts = {
        "model": model,
        "generator": model.frame_generator(),
        "identity": model.identity_encoder,
        "audio": model.audio_encoder,
        "decoder": model.decoder,
    }
    shapes = {}
    for part, m in parts.items():
        for kind, tensors in (("in", m.input), ("out", m.output)):
            items = tensors.items() if isinstance(tensors, dict) else [("", tensors)]
            shapes.update({(part, kind, key): tuple(t.shape) for key, t in items})
    return shapes


def test_separable_model_keeps_every_shape_and_name():
    standard = Speech2Vid(width=0.25, embedding_dim=64)
    separable = Speech2Vid(width=0.25, embedding_dim=64, separable=True)
    assert _shapes(separable) == _shapes(standard)
    frame = np.asarray(separable(_inputs()))
    assert frame.shape == (2, 112, 112, 3) and frame.min() >= 0 and frame.max() <= 1
    # Body convolutions become depthwise + pointwise; the pointwise keeps the standard conv's name.
    decoder, identity, audio = separable.decoder, separable.identity_encoder, separable.audio_encoder
    for part, name in [
        (decoder, "conv6"),
        (decoder, "conv14"),
        (identity, "conv2"),
        (identity, "conv5"),
        (audio, "conv3"),
    ]:
        assert isinstance(part.get_layer(f"{name}_dw"), keras.layers.DepthwiseConv2D)
        assert part.get_layer(name).kernel_size == (1, 1)
        same_part = standard.get_layer(part.name)
        assert part.get_layer(f"{name}_relu").output.shape == same_part.get_layer(f"{name}_relu").output.shape
    # Standard where separable gains nothing: RGB / MFCC input, whole-map fc6, 1 x 1 fc7.
    for part, name, kernel in [
        (identity, "conv1", (7, 7)),
        (audio, "conv1", (3, 3)),
        (identity, "fc6", (6, 6)),
        (audio, "fc6", (5, 8)),
        (audio, "fc7", (1, 1)),
    ]:
        assert type(part.get_layer(name)) is keras.layers.Conv2D and part.get_layer(name).kernel_size == kernel
        assert f"{name}_dw" not in [layer.name for layer in part.layers]
    assert type(decoder.get_layer("deconv14")) is keras.layers.Conv2DTranspose
    assert separable.count_params() < standard.count_params()


def test_separable_config_round_trip_and_old_configs():
    model = Speech2Vid(width=0.125, embedding_dim=32, separable=True)
    config = model.get_config()
    assert config["separable"] is True
    clone = Speech2Vid.from_config(config)
    assert clone.separable and clone.decoder.separable and clone.identity_encoder.separable
    clone.set_weights(model.get_weights())
    x = _inputs()
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(model(x)))
    for part in (
        Speech2VidAudioEncoder(0.125, 32, True),
        Speech2VidIdentityEncoder(1, 0.125, 32, True),
        Speech2VidDecoder(0.125, 32, True, True),
    ):
        assert part.get_config()["separable"] is True
        assert type(part).from_config(part.get_config()).get_config() == part.get_config()
    # A config saved before `separable` existed still loads, as the standard model.
    old = {k: v for k, v in Speech2Vid(width=0.125, embedding_dim=32).get_config().items() if k != "separable"}
    assert Speech2Vid.from_config(old).separable is False


def test_separable_keras_file_save_and_reload(tmp_path):
    model = Speech2Vid(width=0.125, embedding_dim=32, separable=True)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Speech2Vid) and loaded.separable
    x = _inputs()
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    generator = loaded.frame_generator()
    identity = {k: np.asarray(v) for k, v in loaded.identity_encoder(x["faces"]).items()}
    np.testing.assert_allclose(np.asarray(generator({**identity, "mfcc": x["mfcc"]})), np.asarray(model(x)), atol=1e-6)


def test_mobile_tiny_experiment_builds():
    from keras_s2v.configs.experiments import get_experiment
    from keras_s2v.training.train_lib import build_model

    model = build_model(get_experiment("s2v_mobile_tiny"))
    assert isinstance(model, Speech2Vid) and model.separable and model.width == 0.125
    assert any(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in model.decoder.layers)
    assert np.asarray(model(_inputs())).shape == (2, 112, 112, 3)


def test_resize_decoder_with_high_res_skips_round_trips_and_splits_for_export():
    """s2v_real's generator: the identity's 56 and 28 px maps reach the decoder; the export split still holds."""
    model = Speech2Vid(width=0.125, embedding_dim=32, upsampling="resize", high_res_skips=True)
    shapes = {k: tuple(v.shape[1:]) for k, v in model.identity_encoder.output.items()}
    assert shapes["skip_56"] == (56, 56, 12) and shapes["skip_28"] == (28, 28, 12)
    transposed = [layer.name for layer in model.decoder.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert transposed == ["deconv6"]  # 1 x 1 -> 6 x 6 only: no stride, no checkerboard
    x = _inputs(batch=3)
    identity = {k: np.asarray(v) for k, v in model.identity_encoder(x["faces"]).items()}
    generator = model.frame_generator()
    assert set(generator.input) == {"identity", "skip_56", "skip_28", "skip_14", "skip_6", "mfcc"}
    np.testing.assert_allclose(np.asarray(generator({**identity, "mfcc": x["mfcc"]})), np.asarray(model(x)), atol=1e-6)
    clone = Speech2Vid.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(model(x)))
    # The paper's decoder keeps its weight names, so models trained before these options still load.
    paper = Speech2Vid(width=0.125, embedding_dim=32)
    assert [w.path for w in paper.weights] == [w.path for w in Speech2Vid.from_config(paper.get_config()).weights]
    with pytest.raises(ValueError, match="upsampling must be one of"):
        Speech2VidDecoder(0.125, 32, upsampling="pixelshuffle")


def test_full_res_skip_passes_the_faces_pixels_to_a_112_px_stage():
    """The 112 px stage: its map is an identity output like the other skips, so the export split still holds."""
    model = Speech2Vid(
        width=0.125, embedding_dim=32, upsampling="resize", high_res_skips=True, masked_target=True, full_res_skip=True
    )
    assert tuple(model.identity_encoder.output["skip_112"].shape[1:]) == (112, 112, 4)
    assert model.decoder.get_layer("to_rgb").kernel.shape == (1, 1, 4, 3)
    x = _inputs(batch=2)
    x["faces"] = np.concatenate([x["faces"], x["faces"][..., ::-1]], axis=-1)
    identity = {k: np.asarray(v) for k, v in model.identity_encoder(x["faces"]).items()}
    generator = model.frame_generator()
    assert "skip_112" in generator.input
    np.testing.assert_allclose(np.asarray(generator({**identity, "mfcc": x["mfcc"]})), np.asarray(model(x)), atol=1e-6)
    hidden = {**x, "faces": x["faces"].copy()}
    hidden["faces"][:, 56:, :, :3] = 0  # the target's mouth still never reaches the model, not even at 112 px
    np.testing.assert_array_equal(np.asarray(model(hidden)), np.asarray(model(x)))
    clone = Speech2Vid.from_config(model.get_config())
    assert clone.full_res_skip and clone.decoder.full_res_skip and clone.identity_encoder.full_res_skip
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(model(x)))
    # Without skip connections there is nothing to pass: the option is dropped, as high_res_skips is.
    assert not Speech2Vid(width=0.125, embedding_dim=32, skip_connections=False, full_res_skip=True).full_res_skip


def test_masked_target_model_masks_the_targets_lower_half_and_round_trips(tmp_path):
    """Wav2Lip's conditioning: the target frame first, its lower half (mouth and jaw) never reaches the model."""
    model = Speech2Vid(width=0.125, embedding_dim=32, masked_target=True, high_res_skips=True, upsampling="resize")
    assert tuple(model.input["faces"].shape[1:]) == (112, 112, 6)
    rng = np.random.default_rng(0)
    faces = rng.uniform(0, 1, (2, 112, 112, 6)).astype(np.float32)
    mfcc = rng.normal(size=(2, 12, 35)).astype(np.float32)
    out = np.asarray(model({"faces": faces, "mfcc": mfcc}))
    lower, upper, reference = faces.copy(), faces.copy(), faces.copy()
    lower[:, 56:, :, :3] = 0
    upper[:, 55, :, :3] = 0  # the last unmasked row
    reference[:, 56:, :, 3:] = 0  # the reference face is seen whole
    np.testing.assert_array_equal(np.asarray(model({"faces": lower, "mfcc": mfcc})), out)
    assert np.abs(np.asarray(model({"faces": upper, "mfcc": mfcc})) - out).max() > 1e-4
    assert np.abs(np.asarray(model({"faces": reference, "mfcc": mfcc})) - out).max() > 1e-4
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert reloaded.masked_target and reloaded.identity_encoder.masked_target
    np.testing.assert_array_equal(np.asarray(reloaded({"faces": faces, "mfcc": mfcc})), out)


def test_bilinear_resize_is_kerass_resizing_with_a_size_every_exporter_keeps():
    from keras_s2v.layers.blocks import BilinearResize

    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 5)).astype(np.float32)
    for size in (14, 28):
        expected = np.asarray(keras.layers.Resizing(size, size, interpolation="bilinear")(x))
        np.testing.assert_allclose(np.asarray(BilinearResize(size)(x)), expected, atol=1e-6)
    assert BilinearResize.from_config(BilinearResize(14).get_config()).size == 14


def test_separable_audio_encoder_keeps_the_audio_at_initialisation():
    """He initialisation of the depthwise taps: the audio survives 4 separable blocks in inference mode.

    With Keras's "he_normal" (fan_in counting every input channel) s2v_mobile's audio vector
    varied 10^4 times less than its first block's output, so its frames ignored the audio.
    """
    rng = np.random.default_rng(0)
    mfcc = (5 * rng.normal(size=(2, 12, 35))).astype(np.float32)
    for separable in (False, True):
        encoder = Speech2VidAudioEncoder(width=0.5, separable=separable)
        probe = keras.Model(encoder.input, [encoder.get_layer("conv1_relu").output, encoder.output])
        first, vector = (np.asarray(v) for v in probe(mfcc, training=False))
        spread = np.abs(vector[0] - vector[1]).max() / np.abs(first[0] - first[1]).max()
        assert spread > 0.1, (separable, spread)
