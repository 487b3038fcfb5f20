"""GPU timing of layout and cuDNN choices for chapter 2's networks at the full profile's sizes
(256x256, batch 16, bfloat16 autocast, Adam), random data: what the device rule should default to
on CUDA. Prints one JSON line per variant. Not collected by pytest."""

from __future__ import annotations

import json
import time

import torch
from torch import nn

from fetal_lib.config.profiles import chapter_knobs
from fetal_lib.book.chapters import spec_of
from fetal_lib.networks import torch as nets
from fetal_lib.networks.torch import ducknet


def run(name: str, arch: str, options: dict, channels_last_input: bool = False, warm: int = 12, steps: int = 12) -> None:
    torch.manual_seed(0)
    net = nets.create(arch, **options).cuda().train()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(16, 1, 256, 256, device="cuda")
    y = (torch.rand(16, 1, 256, 256, device="cuda") > 0.5).float()
    if channels_last_input:
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = net(x)
        loss = nn.functional.binary_cross_entropy_with_logits(out.float(), y)
        loss.backward()
        opt.step()

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(warm):
        step()
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    print(json.dumps({"variant": name, "first_steps_s": round(t1 - t0, 2), "steady_images_per_s": round(16 * steps / (t2 - t1), 1),
                      "benchmark": torch.backends.cudnn.benchmark}), flush=True)
    del net, opt


def main() -> None:
    opts = chapter_knobs(spec_of("seg_benchmark"), "full")["arch_options"]
    torch.backends.cudnn.benchmark = False
    run("attention_unet, cudnn.benchmark off", "attention_unet", opts["attention_unet"])
    run("ducknet as built (channels-last weights), benchmark off", "ducknet", opts["ducknet"])
    run("ducknet NCHW weights, benchmark off", "ducknet", {**opts["ducknet"], "channels_last": False})
    run("transunet, benchmark off", "transunet", opts["transunet"])
    torch.backends.cudnn.benchmark = True
    run("attention_unet, cudnn.benchmark on", "attention_unet", opts["attention_unet"])
    run("ducknet as built, benchmark on", "ducknet", opts["ducknet"])
    run("ducknet NCHW weights, benchmark on", "ducknet", {**opts["ducknet"], "channels_last": False})
    ducknet.Conv2d.forward = nn.Conv2d.forward  # outputs keep the layout cuDNN chose
    run("ducknet all channels-last (weights, input, outputs), benchmark on", "ducknet", opts["ducknet"], channels_last_input=True)
    run("transunet, benchmark on", "transunet", opts["transunet"])


if __name__ == "__main__":
    main()
