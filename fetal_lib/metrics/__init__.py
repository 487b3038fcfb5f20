"""Metrics as pure functions: segmentation, biometry, regression, classification, uncertainty."""
