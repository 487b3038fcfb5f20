"""Datasets: manifests, verification, download, loaders, phantoms, grouped splits."""
