"""One parameter count for torch modules and Keras models (fetal_lib.networks.parameters)."""

from __future__ import annotations

import sys

import pytest

from fetal_lib.networks.parameters import count_parameters


def test_a_torch_module_counts_its_trainable_parameters_unless_asked_for_all() -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    net[2].weight.requires_grad_(False)
    every = (1 * 4 * 9 + 4) + (4 + 4) + (4 * 2 + 2)  # BatchNorm's running statistics are buffers, not parameters
    assert count_parameters(net) == count_parameters(net, trainable_only=True) == every - 8
    assert count_parameters(net, trainable_only=False) == every


def test_importing_it_imports_no_framework() -> None:
    import subprocess

    code = ("import sys, fetal_lib.networks.parameters; "
            "print([m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
