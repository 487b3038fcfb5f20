"""Explanations: Grad-CAM and attention maps."""
