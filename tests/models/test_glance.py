"""Lips at a glance: generator shapes and fusion, window generator = whole model, warp, the training-only
models (flow, autoencoder, correlation encoders, three-stream discriminator), config round trips and
save/reload, and the flow network's gradient reaching the generator."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_s2v.models import glance, lip_motion

WIDTH = 0.125
# Batch 1 for the generators: TensorFlow's default CPU Conv3DTranspose is very slow on batches > 1.
VARIANTS = {
    "16_frames_per_frame_skips": {"frames": 16, "skips": True, "upsampling": "per_frame"},
    "8_frames_3d_no_skips": {"frames": 8, "skips": False, "upsampling": "3d"},
}


def _generator_inputs(frames, batch=1, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "lips": rng.random((batch, 64, 64, 3), dtype=np.float32),
        "log_mel": (3.0 * rng.standard_normal((batch, 4 * frames, 128)) - 5.0).astype(np.float32),
    }


def _assert_config_and_save_reload(model, inputs, tmp_path, atol=1e-6):
    """Save to .keras, load (rebuilt from its config): the same config, the same outputs."""
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model) and reloaded.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(reloaded(inputs)), np.asarray(model(inputs)), atol=atol)
    return reloaded


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def generator(request):
    keras.utils.set_random_seed(0)
    return glance.GlanceGenerator(width=WIDTH, **VARIANTS[request.param])


def test_generator_shapes_and_fusion(generator):
    frames = generator.frames
    x = _generator_inputs(frames)
    out = np.asarray(generator(x))
    assert out.shape == (1, frames, 64, 64, 3)
    assert 0.0 <= out.min() and out.max() <= 1.0
    identity = generator.identity_encoder(x["lips"])
    assert list(identity) == ["identity", "skip_32", "skip_16"]
    channels = identity["identity"].shape[-1]
    assert identity["identity"].shape == (1, 8, 8, channels)
    assert identity["skip_32"].shape[:3] == (1, 32, 32) and identity["skip_16"].shape[:3] == (1, 16, 16)
    speech = generator.audio_encoder(x["log_mel"])
    assert speech.shape == (1, frames, 8, channels)  # time / 4, frequency / 16
    fused = np.asarray(keras.Model(generator.input, generator.get_layer("fused").output)(x))
    assert fused.shape == (1, frames, 8, 8, 2 * channels)
    # Duplication: the identity map in every frame, each frame's audio row copied along the columns.
    np.testing.assert_allclose(
        fused[:, :, :, :, :channels], np.asarray(identity["identity"])[:, None].repeat(frames, 1), atol=1e-6
    )
    np.testing.assert_allclose(fused[:, :, :, :, channels:], np.asarray(speech)[:, :, :, None].repeat(8, 3), atol=1e-6)


def test_window_generator_equals_the_generator(generator):
    x = _generator_inputs(generator.frames, seed=1)
    window = generator.window_generator()
    identity = {k: np.asarray(v) for k, v in generator.identity_encoder(x["lips"]).items()}
    assert set(window.input) == {"identity", "skip_32", "skip_16", "log_mel"}
    np.testing.assert_allclose(
        np.asarray(window({**identity, "log_mel": x["log_mel"]})), np.asarray(generator(x)), atol=1e-6
    )


def test_generator_audio_and_lips_move_the_frames(generator):
    x = _generator_inputs(generator.frames)
    base = np.asarray(generator(x))
    other = _generator_inputs(generator.frames, seed=2)
    assert np.abs(base - np.asarray(generator({**x, "log_mel": other["log_mel"]}))).max() > 1e-5
    assert np.abs(base - np.asarray(generator({**x, "lips": other["lips"]}))).max() > 1e-5


def test_generator_config_round_trip_and_save_reload(generator, tmp_path):
    reloaded = _assert_config_and_save_reload(generator, _generator_inputs(generator.frames), tmp_path)
    assert reloaded.window_generator() is not None


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lip_size"):
        glance.GlanceGenerator(lip_size=96, width=WIDTH)
    with pytest.raises(ValueError, match="upsampling"):
        glance.GlanceGenerator(width=WIDTH, upsampling="bilinear")


# --- warp -------------------------------------------------------------------------------------


def test_warp_zero_flow_is_the_identity():
    image = np.random.default_rng(0).random((2, 6, 7, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(lip_motion.warp(image, np.zeros((2, 6, 7, 2), np.float32))), image)


def test_warp_integer_shift_moves_pixels_exactly():
    image = np.random.default_rng(0).random((1, 6, 7, 3), dtype=np.float32)
    flow = np.zeros((1, 6, 7, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0  # out[y, x] = image[y - 1, x + 2]
    out = np.asarray(lip_motion.warp(image, flow))
    np.testing.assert_array_equal(out[:, 1:, :-2], image[:, :-1, 2:])
    np.testing.assert_array_equal(out[:, 0, :-2], image[:, 0, 2:])  # rows above the top clamp to row 0
    np.testing.assert_array_equal(out[:, 1:, -1], image[:, :-1, -1])  # columns past the right clamp to the last


def test_warp_gradient_reaches_the_flow():
    rng = np.random.default_rng(0)
    image, target = rng.random((2, 2, 8, 8, 3), dtype=np.float32)
    flow = tf.Variable(np.full((2, 8, 8, 2), 0.3, np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(lip_motion.warp(image, flow) - target))
    gradient = tape.gradient(loss, flow).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0


# --- Training-only models ---------------------------------------------------------------------


def test_flow_net_and_clip_motion(tmp_path):
    flow_net = lip_motion.LipFlowNet(width=WIDTH)
    rng = np.random.default_rng(0)
    clips = rng.random((1, 4, 64, 64, 3), dtype=np.float32)
    pair = {"first": clips[:, 0], "second": clips[:, 1]}
    assert flow_net(pair).shape == (1, 64, 64, 2)
    flows = np.asarray(lip_motion.clip_motion(flow_net, clips, "flow"))
    assert flows.shape == (1, 3, 64, 64, 2)
    np.testing.assert_allclose(
        flows[:, 1], np.asarray(flow_net({"first": clips[:, 1], "second": clips[:, 2]})), atol=1e-5
    )
    differences = np.asarray(lip_motion.clip_motion(flow_net, clips, "difference"))
    np.testing.assert_allclose(differences, clips[:, 1:] - clips[:, :-1], atol=1e-6)
    with pytest.raises(ValueError):
        lip_motion.clip_motion(flow_net, clips, "farneback")
    _assert_config_and_save_reload(flow_net, pair, tmp_path)


def test_lip_autoencoder(tmp_path):
    model = lip_motion.LipAutoencoder(width=WIDTH, res_blocks=2)
    lips = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    reconstruction = np.asarray(model(lips))
    assert reconstruction.shape == (2, 64, 64, 3) and 0.0 <= reconstruction.min() and reconstruction.max() <= 1.0
    assert model.encoder(lips).shape == (2, 16, 16, 16)
    assert model.encoder.get_layer("res2_relu").output is model.encoder.output  # phi: after the residual blocks
    _assert_config_and_save_reload(model, lips, tmp_path)


def test_correlation_encoders_keep_any_length(tmp_path):
    rng = np.random.default_rng(0)
    audio_model = lip_motion.AudioDerivativeEncoder(width=WIDTH, feature_dim=8)
    motion_model = lip_motion.MotionEncoder(channels=3, width=WIDTH, feature_dim=8)
    for steps in (15, 7):
        assert audio_model(rng.standard_normal((2, steps, 128)).astype(np.float32)).shape == (2, steps, 8)
        assert motion_model(rng.standard_normal((1, steps, 64, 64, 3)).astype(np.float32)).shape == (1, steps, 8)
    # No bias anywhere: silence / stillness -> zero features.
    assert not np.asarray(audio_model(np.zeros((1, 5, 128), np.float32))).any()
    audio = rng.standard_normal((1, 15, 128)).astype(np.float32)
    # Receptive field 9: changing step 0 leaves steps >= 5 alone (4 layers of kernel 3 see +-4).
    changed = audio.copy()
    changed[:, 0] += 1.0
    delta = np.abs(np.asarray(audio_model(changed)) - np.asarray(audio_model(audio))).max(axis=-1)[0]
    assert delta[4] > 0 and not delta[5:].any()
    _assert_config_and_save_reload(audio_model, audio, tmp_path)
    _assert_config_and_save_reload(motion_model, rng.standard_normal((1, 3, 64, 64, 3)).astype(np.float32), tmp_path)


@pytest.mark.parametrize("streams", ["audio,video,flow", "audio,video"])
def test_three_stream_discriminator(streams, tmp_path):
    model = lip_motion.ThreeStreamDiscriminator(frames=8, width=WIDTH, streams=streams)
    rng = np.random.default_rng(0)
    x = {
        "frames": rng.random((2, 8, 64, 64, 3), dtype=np.float32),
        "log_mel": rng.standard_normal((2, 32, 128)).astype(np.float32),
    }
    if streams == "audio,video,flow":
        x["motion"] = rng.standard_normal((2, 7, 64, 64, 2)).astype(np.float32)
    assert set(model.input) == set(x)
    assert model(x).shape == (2, 1)
    _assert_config_and_save_reload(model, x, tmp_path, atol=1e-5)
    with pytest.raises(ValueError, match="streams"):
        lip_motion.ThreeStreamDiscriminator(frames=8, width=WIDTH, streams="video,flow")


def test_the_flow_networks_gradient_reaches_the_generator():
    keras.utils.set_random_seed(0)
    generator = glance.GlanceGenerator(frames=8, width=WIDTH)
    flow_net = lip_motion.LipFlowNet(width=WIDTH)
    flow_net.trainable = False  # trained apart; a fixed feature for the generator
    motion_encoder = lip_motion.MotionEncoder(channels=2, width=WIDTH, feature_dim=8)
    x = _generator_inputs(8)
    parts = (generator.identity_encoder, generator.audio_encoder, generator.decoder)
    with tf.GradientTape() as tape:
        frames = generator(x, training=True)
        features = motion_encoder(lip_motion.clip_motion(flow_net, frames, "flow"))  # (1, 7, 8)
        loss = tf.reduce_mean(tf.square(features))
    assert not flow_net.trainable_weights
    weights = [part.trainable_weights for part in parts]
    assert sum(map(len, weights)) == len(generator.trainable_weights)
    gradients = tape.gradient(loss, weights)
    # The only path from the loss to the generator runs through the frozen flow network.
    for part, part_gradients in zip(parts, gradients):
        assert all(g is not None for g in part_gradients), part.name
        assert sum(float(tf.reduce_sum(tf.abs(g))) for g in part_gradients) > 0, part.name
