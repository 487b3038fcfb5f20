"""A measured check that bfloat16 training is actually faster on this machine.

The CPU's flags say whether bfloat16 is *native* (:mod:`fetal_lib.training.precision`), not
whether it is *faster*: on a 2-core Intel Xeon VM (model 207) with ``avx512_bf16`` but no AMX
exposed, Keras ``mixed_bfloat16`` trained the HC18 U-Net at 7.8 images/s against 15.6 in float32
(XLA), and torch autocast was slower for every chapter-2 network and the 3-D Res-U-Net
(``fetal bench hc`` / ``fetal bench seg`` with ``--set precision=...``). So where the flags allow
bfloat16, ``auto`` also times a short training probe in both precisions and takes bfloat16 only
if it is at least ``MIN_SPEEDUP`` (:mod:`fetal_lib.training.precision`) times as fast.

The probe trains a few steps on a batch of 8 images of 1x128x192 (2 threads) in float32 and in
bfloat16 the way each framework's harness trains: Keras, chapter 1's U-Net (16 filters, depth 4)
in float32 with XLA and in ``mixed_bfloat16`` without (a smaller two-level network ran bfloat16
faster on the machine above, while the U-Net ran it at half the speed: the probe must be a
chapter's own network); torch, a small convolutional encoder-decoder under CPU autocast. It runs in
a subprocess so that no global precision policy leaks into the caller. The answer is cached per
machine (CPU model, native flags, framework version) in ``~/.cache/fetal_lib/precision_probe.json``
(:func:`cache_path`), so every chapter on one machine gets the same answer; delete the file to
measure again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PROBE_VERSION = 1
BATCH, ROWS, COLS, WIDTH = 8, 128, 192, 16
WARMUP_STEPS, TIMED_STEPS, ROUNDS = 3, 4, 3


@dataclass(frozen=True)
class ProbeResult:
    """Seconds per training step of the probe network in each precision, on this machine."""

    framework: str
    float32_s_per_step: float
    bfloat16_s_per_step: float
    machine_key: str

    @property
    def speedup(self) -> float:
        """How many times as fast bfloat16 trained as float32 (above 1: bfloat16 faster)."""
        return self.float32_s_per_step / max(self.bfloat16_s_per_step, 1e-12)

    def to_dict(self) -> dict:
        return {**asdict(self), "speedup": round(self.speedup, 3)}


def cache_path() -> Path:
    """Where the answers are cached: ``$FETAL_PROBE_CACHE``, else
    ``$XDG_CACHE_HOME/fetal_lib/precision_probe.json`` (``~/.cache/...``). A property of the machine,
    so one file serves every checkout and every temporary build folder of the tests."""
    env = os.environ.get("FETAL_PROBE_CACHE")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fetal_lib" / "precision_probe.json"


def framework_version(framework: str) -> str:
    """The installed version of ``framework``'s package (without importing it)."""
    from importlib import metadata

    names = {"keras": ("keras",), "torch": ("torch",)}[framework]
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "absent"


def machine_key(framework: str) -> str:
    """What the cached answer depends on: framework and version, CPU model, native bfloat16 flags."""
    from fetal_lib.training.precision import cpu_flags, cpu_model, native_bf16

    return f"v{PROBE_VERSION}|{framework} {framework_version(framework)}|{cpu_model()}|{','.join(native_bf16(cpu_flags()))}"


def _read_cache(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def measured(framework: str, refresh: bool = False, path: Path | None = None) -> ProbeResult:
    """The probe's figures for ``framework`` on this machine: from the cache when its key matches,
    else measured now (in a subprocess, about 10-30 s) and cached.

    Raises:
        RuntimeError: the probe subprocess failed (its last error line is in the message).
    """
    path = cache_path() if path is None else Path(path)
    key = machine_key(framework)
    cached = _read_cache(path).get(framework)
    if not refresh and isinstance(cached, dict) and cached.get("machine_key") == key:
        return ProbeResult(framework, float(cached["float32_s_per_step"]), float(cached["bfloat16_s_per_step"]), key)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "fetal_lib.training.precision_probe", framework],
                          capture_output=True, text=True, env=env, timeout=600)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the {framework} precision probe failed: {tail}")
    figures = json.loads(lines[-1])
    result = ProbeResult(framework, float(figures["float32"]), float(figures["bfloat16"]), key)
    doc = _read_cache(path)
    doc[framework] = result.to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: two chapters probing at once never leave a half-written file
    return result


def _median_step_seconds(step, rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(TIMED_STEPS):
            step()
        times.append((time.perf_counter() - t0) / TIMED_STEPS)
    return sorted(times)[len(times) // 2]


def _probe_torch() -> dict[str, float]:
    import torch
    from torch import nn

    torch.set_num_threads(2)
    torch.manual_seed(0)

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    x = torch.rand(BATCH, 1, ROWS, COLS)
    y = (torch.rand(BATCH, 1, ROWS, COLS) > 0.5).float()
    out = {}
    for name in ("float32", "bfloat16"):
        net = nn.Sequential(*block(1, WIDTH), *block(WIDTH, WIDTH), nn.MaxPool2d(2), *block(WIDTH, 2 * WIDTH),
                            *block(2 * WIDTH, 2 * WIDTH), nn.Upsample(scale_factor=2), *block(2 * WIDTH, WIDTH), nn.Conv2d(WIDTH, 1, 1))
        opt = torch.optim.Adam(net.parameters(), 1e-3)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bfloat16"):
                loss = nn.functional.binary_cross_entropy_with_logits(net(x).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        for _ in range(WARMUP_STEPS):
            step()
        out[name] = _median_step_seconds(step)
    return out


def _probe_keras() -> dict[str, float]:
    import keras
    import numpy as np

    from fetal_lib.networks.keras import create
    from fetal_lib.training.keras import configure, dtype_policy

    configure(threads=2, seed=0)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, ROWS, COLS, 1), dtype=np.float32)
    y = (rng.random((BATCH, ROWS, COLS, 1)) > 0.5).astype(np.float32)
    out = {}
    for name, policy, xla in (("float32", "float32", True), ("bfloat16", "mixed_bfloat16", False)):
        with dtype_policy(policy):
            model = create("unet", input_shape=(ROWS, COLS, 1), filters=WIDTH, depth=4, block="corrected", name=f"probe_{name}")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", jit_compile=xla)
        for _ in range(WARMUP_STEPS):
            model.train_on_batch(x, y)
        out[name] = _median_step_seconds(lambda: model.train_on_batch(x, y))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in ("keras", "torch"):
        print("usage: python -m fetal_lib.training.precision_probe keras|torch", file=sys.stderr)
        return 2
    figures = _probe_keras() if argv[0] == "keras" else _probe_torch()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
