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
in float32 with and without XLA (chapter 1 compiles its step, chapters 3 and 4 do not) and in
``mixed_bfloat16`` without (a smaller two-level network ran bfloat16 faster on the machine
above, while the U-Net ran it at half the speed: the probe must be a chapter's own network);
torch, chapter 2's Attention U-Net at its cpu width under CPU autocast (a small plain
encoder-decoder gave answers from 0.98x to 1.21x between two runs). It runs in a subprocess so that
no global precision policy leaks into the caller. The variants are timed in alternating rounds
and each keeps its fastest round, so that another process busy for a while does not make one
precision look slow; still, a probe is best taken on a quiet machine. The answer is cached per
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
from fetal_lib.machine import thread_count
from fetal_lib.machine import cpu_flags, cpu_model, native_bf16
from fetal_lib.training import keras_backend

PROBE_VERSION = 2
BATCH, ROWS, COLS, WIDTH = 8, 128, 192, 16
WARMUP_STEPS, TIMED_STEPS, ROUNDS = 3, 3, 4


@dataclass(frozen=True)
class ProbeResult:
    """Seconds per training step of the probe network in each precision, on this machine
    (Keras: float32 both without and with XLA; bfloat16 always without, as the harness trains)."""

    framework: str
    float32_s_per_step: float
    bfloat16_s_per_step: float
    machine_key: str
    float32_xla_s_per_step: float | None = None  # Keras only

    def speedup_over(self, xla: bool = False) -> float:
        """How many times as fast bfloat16 trained as float32 (above 1: bfloat16 faster); ``xla``:
        against float32 with XLA, as a chapter that compiles its float32 step would train."""
        f32 = self.float32_xla_s_per_step if xla and self.float32_xla_s_per_step is not None else self.float32_s_per_step
        return f32 / max(self.bfloat16_s_per_step, 1e-12)

    @property
    def speedup(self) -> float:
        """:meth:`speedup_over` float32 without XLA."""
        return self.speedup_over(False)

    def to_dict(self) -> dict:
        out = {**asdict(self), "speedup": round(self.speedup, 3)}
        if self.float32_xla_s_per_step is not None:
            out["speedup_over_xla"] = round(self.speedup_over(True), 3)
        return out


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


def keras_backend_name() -> str:
    """The Keras backend this process and its probe subprocess use (``KERAS_BACKEND``, default tensorflow)."""
    return (os.environ.get("KERAS_BACKEND") or "tensorflow").strip().lower()


def cache_slot(framework: str) -> str:
    """The cache entry of ``framework``: Keras on torch is measured apart from Keras on TensorFlow."""
    if framework == "keras" and keras_backend_name() != "tensorflow":
        return f"keras-{keras_backend_name()}"
    return framework


def machine_key(framework: str) -> str:
    """What the cached answer depends on: framework and version (Keras: and its backend), CPU model,
    native bfloat16 flags."""

    version = framework_version(framework)
    if framework == "keras":
        version += f" on {keras_backend_name()}"
    return f"v{PROBE_VERSION}|{framework} {version}|{cpu_model()}|{','.join(native_bf16(cpu_flags()))}"


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
    slot = cache_slot(framework)
    cached = _read_cache(path).get(slot)
    if not refresh and isinstance(cached, dict) and cached.get("machine_key") == key:
        xla = cached.get("float32_xla_s_per_step")
        return ProbeResult(framework, float(cached["float32_s_per_step"]), float(cached["bfloat16_s_per_step"]), key,
                           None if xla is None else float(xla))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "fetal_lib.training.precision_probe", framework],
                          capture_output=True, text=True, env=env, timeout=600)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the {framework} precision probe failed: {tail}")
    figures = json.loads(lines[-1])
    xla = figures.get("float32_xla")
    result = ProbeResult(framework, float(figures["float32"]), float(figures["bfloat16"]), key, None if xla is None else float(xla))
    doc = _read_cache(path)
    doc[slot] = result.to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: two chapters probing at once never leave a half-written file
    return result


def _interleaved_step_seconds(steps: dict, rounds: int = ROUNDS) -> dict[str, float]:
    """Seconds per step of each ``steps[name]()``, timed in alternating rounds of
    :data:`TIMED_STEPS` steps and taken as each one's fastest round: another process that takes
    the CPU for a while slows whichever variant runs then, and the fastest round discards that."""
    best = {name: float("inf") for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(TIMED_STEPS):
                step()
            best[name] = min(best[name], (time.perf_counter() - t0) / TIMED_STEPS)
    return best


def _probe_torch() -> dict[str, float]:
    import torch
    from torch import nn

    from fetal_lib.networks.torch import create  # local: another import in this function's module binds the same name

    torch.set_num_threads(thread_count(2))
    torch.manual_seed(0)
    x = torch.rand(BATCH, 1, ROWS, COLS)
    y = (torch.rand(BATCH, 1, ROWS, COLS) > 0.5).float()
    steps = {}
    for name in ("float32", "bfloat16"):
        net = create("attention_unet", base_width=8, depth=5)
        opt = torch.optim.Adam(net.parameters(), 1e-3)

        def step(net=net, opt=opt, bf16=name == "bfloat16"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(x)
            loss = nn.functional.binary_cross_entropy_with_logits(out.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        for _ in range(WARMUP_STEPS):
            step()
        steps[name] = step
    return _interleaved_step_seconds(steps)


def _probe_keras() -> dict[str, float]:
    import keras
    import numpy as np

    from fetal_lib.networks.keras import create  # local: another import in this function's module binds the same name
    from fetal_lib.training.keras import configure, dtype_policy  # looked up at call time: a test replaces it

    configure(threads=2, seed=0)
    arms = [("float32_xla", "float32", True)] if keras_backend.compiles_with_xla() else []  # XLA is TensorFlow's
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, ROWS, COLS, 1), dtype=np.float32)
    y = (rng.random((BATCH, ROWS, COLS, 1)) > 0.5).astype(np.float32)
    steps = {}
    for name, policy, xla in arms + [("float32", "float32", False), ("bfloat16", "mixed_bfloat16", False)]:
        with dtype_policy(policy):
            model = create("unet", input_shape=(ROWS, COLS, 1), filters=WIDTH, depth=4, block="corrected", name=f"probe_{name}")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", jit_compile=xla)
        for _ in range(WARMUP_STEPS):
            model.train_on_batch(x, y)
        steps[name] = (lambda m=model: m.train_on_batch(x, y))
    return _interleaved_step_seconds(steps)


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
