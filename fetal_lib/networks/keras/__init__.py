"""Keras 3 architectures (import TensorFlow/Keras lazily: only these modules do)."""
