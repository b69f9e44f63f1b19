"""Data: audio/video timing and features, faces, preparation into TFRecord shards, synthetic corpus."""
