"""keras_s2v: audio-driven talking-face generation (Speech2Vid, temporal GANs, lip movements at a glance)."""

__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) hides our own messages;
# users who want it set TF_CPP_MIN_LOG_LEVEL themselves.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
