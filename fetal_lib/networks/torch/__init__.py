"""PyTorch architectures in plain torch (no torchvision/timm)."""
