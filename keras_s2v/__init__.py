"""keras_s2v: audio-driven talking-face generation (Speech2Vid, temporal GANs, lip movements at a glance)."""

__version__ = "0.1.0"
