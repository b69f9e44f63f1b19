"""The serving contract's names: the exported signatures, their tensors, and where an export describes itself.

Written once here and used by ``export/`` (which writes them into every
SavedModel, TFLite and ONNX file and into ``metadata.json``) and by every
client of an export (``backends``, ``frame_loop``, ``lite_client``,
``serving_client``; an app reads the same names from ``metadata.json``).
It imports nothing, so the runtime uses it without importing ``export/``.
What each signature takes and gives: ``export/signatures.py``.
"""

# --- Signatures --------------------------------------------------------------------------------

IDENTITY_FEATURES = "identity_features"  # faces (and target) -> identity outputs, once per face
GENERATE_FRAME = "generate_frame"  # identity outputs + mfcc -> frame (Speech2Vid)
GENERATE_FRAME_PCM = "generate_frame_pcm"  # identity outputs + pcm -> frame (Speech2Vid)
SERVING_DEFAULT = "serving_default"  # faces (and target) + pcm -> frame (Speech2Vid)
GENERATE_STEP = "generate_step"  # identity outputs + pcm + noise + states -> frame + states (temporal GAN)
GENERATE_WINDOW = "generate_window"  # identity outputs + pcm -> frames (lips at a glance)
SIGNATURES = (IDENTITY_FEATURES, GENERATE_FRAME, GENERATE_FRAME_PCM, SERVING_DEFAULT)
# What goes to phones and ONNX: the identity encoder and the per-window generator (both audio forms).
ON_DEVICE_SIGNATURES = (IDENTITY_FEATURES, GENERATE_FRAME, GENERATE_FRAME_PCM)
STREAMING_SIGNATURES = (IDENTITY_FEATURES, GENERATE_STEP)  # a temporal GAN's: everywhere
WINDOW_SIGNATURES = (IDENTITY_FEATURES, GENERATE_WINDOW)  # lips at a glance: everywhere

# --- Tensors -----------------------------------------------------------------------------------

FACES = "faces"  # identity_features' (reference) faces input
TARGET = "target"  # a masked_target model's identity_features input: the frame being made
IDENTITY = "identity"  # identity_features' first output (the skips follow, named by the model)
MFCC = "mfcc"  # generate_frame's audio input
PCM = "pcm"  # the generators' raw audio input
NOISE = "noise"  # generate_step's standard-normal input
FRAME = "frame"  # the per-frame generators' output
FRAMES = "frames"  # generate_window's output (a window of lip frames)

# --- The export's description ------------------------------------------------------------------

METADATA_FILE = "metadata.json"  # names, shapes, normalisation, audio parameters; also marks a folder as an export
METADATA_NAME = "keras_s2v"  # name of the metadata entry embedded in .tflite files
SAVED_MODEL_ASSETS = "assets.extra"  # a SavedModel version's folder holding its metadata.json
SERVING_DIR = "serving"  # an export's serving/<model>/<version>/, TF Serving's layout
