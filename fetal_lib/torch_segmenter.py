"""A trained 2-D head-segmentation network in torch, as :class:`fetal_lib.hc.measure.HCModel` uses it.

:class:`TorchSegmenter` holds the network, its registry name and options and the letterboxed
input size, and turns a batch of letterboxed images (N, rows, cols, 1; the layout of chapter 1's
Keras model) into head probabilities of the same shape:

* a segmentation network (Attention U-Net, UNeXt, TransUNet, DUCK-Net): the sigmoid of its logits;
* the diffusion model (MedSegDiff-V2): the mean of ``n_samples`` DDIM samples of ``steps`` steps,
  with the per-pixel standard deviation over the samples as its uncertainty. Sampling starts
  from noise drawn by a generator seeded with ``seed`` for every call, so one image always gets
  the same answer.

The weights are saved as a state dict (``<name>.pt``) beside a model card (``<name>.card.json``)
that records the architecture (:mod:`fetal_lib.model_card`); :meth:`TorchSegmenter.load` rebuilds
the network from the card and refuses a card of another framework or of a network that is not a
2-D head segmenter, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fetal_lib.errors import FetalInputError
from fetal_lib.devices import resolve_device
from fetal_lib.devices import to_host, to_network
from fetal_lib.model_card import card_path, read_card, rebuild
from fetal_lib.model_card import common_fields

# The registry's 2-D head segmenters (fetal_lib.networks.torch) and how each one predicts.
SEGMENTERS = ("attention_unet", "unext", "transunet", "ducknet", "medsegdiff_v2")
DIFFUSION = ("medsegdiff_v2",)


@dataclass
class Sampling:
    """DDIM sampling of the diffusion model: steps per sample, samples per image, seed."""

    steps: int = 5
    n_samples: int = 4
    seed: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"steps": int(self.steps), "n_samples": int(self.n_samples), "seed": int(self.seed)}


@dataclass
class TorchSegmenter:
    """A head-segmentation network and how to get probabilities from it (see module docstring)."""

    net: Any  # torch.nn.Module, eval mode
    arch: str
    options: dict[str, Any]
    rows: int
    cols: int
    sampling: Sampling = field(default_factory=Sampling)
    batch_size: int = 16  # images per forward pass at inference

    @property
    def is_diffusion(self) -> bool:
        return self.arch in DIFFUSION

    @property
    def input_shape(self) -> tuple[None, int, int, int]:
        """(None, rows, cols, 1), as a Keras model's ``input_shape`` (read by HCModel)."""
        return (None, self.rows, self.cols, 1)

    def _chunks(self, batch: np.ndarray):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(np.asarray(batch, np.float32).transpose(0, 3, 1, 2)))
        for start in range(0, x.shape[0], self.batch_size):
            yield x[start : start + self.batch_size]

    def predict_with_uncertainty(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (N, rows, cols, 1) for letterboxed (N, rows, cols, 1) images in [0, 1], and
        the diffusion model's per-pixel standard deviation over samples (None for the others).

        The images go to the network's device and the results come back to the CPU
        (:mod:`fetal_lib.devices`); the diffusion model's noise is drawn on the CPU from the
        seed, so a seed gives the same samples on every device."""
        import torch


        self.net.eval()
        probs, uncs = [], []
        with torch.inference_mode():
            for x in self._chunks(batch):
                x = to_network(x, self.net)
                if self.is_diffusion:
                    gen = torch.Generator().manual_seed(int(self.sampling.seed))
                    p, u = self.net.sample(x, steps=self.sampling.steps, n_samples=self.sampling.n_samples, generator=gen)
                    probs.append(to_host(p).numpy())
                    uncs.append(to_host(u).numpy())
                else:
                    probs.append(to_host(torch.sigmoid(self.net(x).float())).numpy())
        prob = np.concatenate(probs).transpose(0, 2, 3, 1)
        unc = np.concatenate(uncs).transpose(0, 2, 3, 1) if uncs else None
        return prob, unc

    def predict_nhwc(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, rows, cols, 1) for letterboxed (N, rows, cols, 1) images in [0, 1]."""
        return self.predict_with_uncertainty(batch)[0]

    def card_fields(self, profile: str) -> dict[str, Any]:
        """The architecture, input and sampling fields of this network's model card."""

        card = common_fields("torch", self.arch, self.options,
                             {"shape": [self.rows, self.cols, 1], "layout": "rows, cols, channels (the network reads channels first)",
                              "values": "grey image / 255, letterboxed (aspect kept, zero padding)"}, profile)
        if self.is_diffusion:
            card["sampling"] = self.sampling.to_dict()
        return card

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "TorchSegmenter":
        """The network saved at ``path`` (a ``.pt`` state dict with its card beside it), on ``device``
        (``auto``: the GPU when torch sees one, :func:`fetal_lib.devices.resolve_device`).

        Raises:
            NoGpuError: ``device`` is ``cuda`` and there is no GPU (checked before anything is read).
            FetalInputError: the file or its card is missing or unreadable, or the card is of
                another framework or another kind of network (named in the message).
        """
        import torch


        where = resolve_device(device)
        path = Path(path)
        if not path.is_file():
            raise FetalInputError(path, "no model file here; train one with `fetal seg train --arch NAME` or "
                                        "`fetal book --profile cpu --only seg_benchmark`")
        card = read_card(path)
        if card is None:
            raise FetalInputError(card_path(path), "the model card beside the weights is missing or unreadable; "
                                                   "the card says which architecture the weights belong to")
        framework = card.get("framework")
        if framework != "torch":
            raise FetalInputError(card_path(path), f"this card is of a {framework} model, not a torch one; "
                                                   f"pass the model file its card belongs to (a .keras file for Keras)")
        arch = (card.get("architecture") or {}).get("name")
        if arch not in SEGMENTERS:
            raise FetalInputError(card_path(path), f"architecture {arch!r} is not a 2-D head segmentation network; "
                                                   f"known: {', '.join(SEGMENTERS)}")
        options = dict(card["architecture"].get("options") or {})
        rows, cols = (int(v) for v in card["input"]["shape"][:2])
        net = rebuild(card)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - any failure to read the weights is bad input
            raise FetalInputError(path, f"not readable as weights of {arch} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
        net = net.to(where).eval()
        sampling = Sampling(**card["sampling"]) if "sampling" in card else Sampling()
        return cls(net, arch, options, rows, cols, sampling)
