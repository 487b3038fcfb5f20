"""Network architectures: one file per architecture, Keras under keras/, PyTorch under torch/."""
