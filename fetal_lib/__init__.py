"""fetal_lib: the thin shared library behind the fetal imaging compendium.

Importing this package is cheap: TensorFlow and PyTorch are only imported by the
modules that need them (``fetal_lib.networks.*``, training code), never here.
"""

__version__ = "0.1.0"
