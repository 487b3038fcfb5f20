"""TransUNet: a CNN-Transformer hybrid encoder with a cascaded upsampler (2-D segmentation).

After Chen et al. (2021), "TransUNet: Transformers Make Strong Encoders for Medical Image
Segmentation" (arXiv:2102.04306) [chen2021transunet]. The encoder is a hybrid: a CNN
(ResNet-50 in the paper) takes the image to 1/16 of its size and keeps its features at 1/2,
1/4 and 1/8 for the skip connections; a 1x1 patch embedding turns each cell of the 1/16 grid
into a token of ``hidden_size`` channels, learnable position embeddings are added, and
``num_layers`` pre-norm Transformer layers (multi-head self-attention, then an MLP, each with
a residual connection; a final LayerNorm) mix all tokens with each other. The tokens are put
back on the grid and the cascaded upsampler (CUP) decodes them: a 3x3 convolution, then four
times (bilinear upsampling x2, concatenation of the CNN feature at that scale -- none at full
resolution --, two 3x3 conv-BN-ReLU), and a 1x1 convolution giving the per-pixel logits.

The CNN here is a small residual network of plain torch with the layout of the paper's
ResNet: a 7x7 stride-2 root convolution (1/2), a 3x3 stride-2 max-pool and a first stage of
residual blocks (1/4), then two stages whose first block has stride 2 (1/8, 1/16).
``encoder_block="basic"`` uses two-3x3-convolution blocks (cheap, the CPU default);
``"bottleneck"`` uses ResNet-50's 1x1-3x3-1x1 blocks (middle width a quarter of the output).

Position embeddings are learnt for the grid of ``img_size // 16``; an input of another size
(still divisible by 16) gets them resized bilinearly on the 2-D grid, as ViT does when
fine-tuning at another resolution.

Sizes. The defaults are sized for a 2-core CPU (1.09 M parameters). The paper's
R50-ViT-B/16 (about 105 M parameters at 224x224 input) is, in these options::

    encoder_widths=(64, 256, 512, 1024), encoder_blocks=(3, 4, 9), encoder_block="bottleneck",
    hidden_size=768, num_layers=12, num_heads=12, mlp_dim=3072, dropout=0.1,
    head_width=512, decoder_widths=(256, 128, 64, 16)

Differences from the paper: batch normalisation throughout the CNN (the paper's BiT ResNet
uses weight-standardised convolutions with group normalisation, suited to its ImageNet
pre-training, which is not used here); the max-pool pads by 1 so every scale is exactly half
the previous one; the head is a 1x1 convolution (the reference code uses a 3x3); position
embeddings start from a small random normal (the paper loads pre-trained ones); one input
channel is not repeated to three (no pre-trained weights to match).

Input: (batch, in_channels, H, W) with H and W divisible by 16.
Output: logits (batch, num_classes, H, W) (one class: a sigmoid foreground).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

DOWNSAMPLING = 16


class ConvBNReLU(nn.Sequential):
    """Convolution (no bias), batch normalisation, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class BasicBlock(nn.Module):
    """conv3(stride)-BN-ReLU-conv3-BN + shortcut (1x1 conv-BN when the shape changes), then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = _projection(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class BottleneckBlock(nn.Module):
    """ResNet-50 unit: conv1-BN-ReLU, conv3(stride)-BN-ReLU, conv1-BN (middle width out/4) + shortcut, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        mid = max(1, out_ch // 4)
        self.conv1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.shortcut = _projection(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + self.shortcut(x))


def _projection(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """Identity, or a 1x1 conv-BN when the channels or the scale change."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


BLOCKS = {"basic": BasicBlock, "bottleneck": BottleneckBlock}


class ResidualEncoder(nn.Module):
    """The CNN half of the hybrid encoder: features at 1/2, 1/4, 1/8 (skips) and 1/16 (to the Transformer).

    Args:
        in_channels: image channels.
        widths: channels at 1/2 (root), 1/4, 1/8 and 1/16.
        blocks: residual blocks in the stages at 1/4, 1/8 and 1/16.
        block: "basic" or "bottleneck".
    """

    def __init__(self, in_channels: int, widths: Sequence[int], blocks: Sequence[int], block: str = "basic"):
        super().__init__()
        unit = BLOCKS[block]
        self.root = ConvBNReLU(in_channels, widths[0], kernel_size=7, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.stages = nn.ModuleList()
        for i, n in enumerate(blocks):
            stride = 1 if i == 0 else 2  # the first stage is down-sampled by the max-pool
            layers = [unit(widths[i], widths[i + 1], stride)] + [unit(widths[i + 1], widths[i + 1]) for _ in range(n - 1)]
            self.stages.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The 1/16 feature map and the skip features, finest last: [1/8, 1/4, 1/2]."""
        x = self.root(x)
        features = [x]
        x = self.pool(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features[-1], features[-2::-1]


class TransformerLayer(nn.Module):
    """Pre-norm Transformer layer: x + MSA(LN(x)), then x + MLP(LN(x)) (MLP: linear, GELU, linear)."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_dim: int, dropout: float = 0.0, attention_dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, eps=1e-6)
        self.attn = nn.MultiheadAttention(hidden_size, num_heads, dropout=attention_dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(hidden_size, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, mlp_dim), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(mlp_dim, hidden_size), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Bilinear upsampling x2, concatenation of the skip feature (if any), two 3x3 conv-BN-ReLU."""

    def __init__(self, in_ch: int, out_ch: int, skip_ch: int = 0):
        super().__init__()
        self.conv1 = ConvBNReLU(in_ch + skip_ch, out_ch)
        self.conv2 = ConvBNReLU(out_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        # align_corners=True as the reference code's nn.UpsamplingBilinear2d
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class TransUNet(nn.Module):
    """TransUNet for 2-D segmentation.

    Args:
        in_channels: input channels.
        num_classes: output channels (1: sigmoid foreground; K > 1: softmax classes).
        img_size: (H, W) the position embeddings are learnt for (divisible by 16); other
            sizes are served by resizing them.
        encoder_widths: CNN channels at 1/2, 1/4, 1/8, 1/16 (paper: 64, 256, 512, 1024).
        encoder_blocks: residual blocks per stage at 1/4, 1/8, 1/16 (paper: 3, 4, 9).
        encoder_block: "basic" (two 3x3) or "bottleneck" (ResNet-50's, the paper's).
        hidden_size: token width D (paper: 768).
        num_layers: Transformer layers L (paper: 12).
        num_heads: attention heads (paper: 12); must divide ``hidden_size``.
        mlp_dim: hidden width of the Transformer MLP (paper: 3072).
        dropout: dropout on the embeddings, attention output and MLP (paper: 0.1).
        attention_dropout: dropout on the attention weights (paper: 0).
        head_width: channels of the CUP's first 3x3 convolution (paper: 512).
        decoder_widths: channels of the four CUP blocks, 1/8 to full size (paper: 256, 128, 64, 16).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        img_size: Sequence[int] = (128, 192),
        encoder_widths: Sequence[int] = (16, 32, 64, 128),
        encoder_blocks: Sequence[int] = (1, 1, 1),
        encoder_block: str = "basic",
        hidden_size: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_dim: int = 256,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        head_width: int = 64,
        decoder_widths: Sequence[int] = (64, 32, 16, 8),
    ):
        super().__init__()
        img_size = [int(s) for s in img_size]
        encoder_widths = [int(w) for w in encoder_widths]
        encoder_blocks = [int(n) for n in encoder_blocks]
        decoder_widths = [int(w) for w in decoder_widths]
        if len(img_size) != 2 or any(s <= 0 or s % DOWNSAMPLING for s in img_size):
            raise ValueError(f"img_size {tuple(img_size)} must be two sizes divisible by {DOWNSAMPLING}")
        if len(encoder_widths) != 4 or len(decoder_widths) != 4 or len(encoder_blocks) != 3:
            raise ValueError("encoder_widths and decoder_widths need 4 entries, encoder_blocks 3")
        if min(encoder_blocks) < 1:
            raise ValueError("every encoder stage needs at least one block")
        if encoder_block not in BLOCKS:
            raise ValueError(f"encoder_block must be one of {', '.join(BLOCKS)}; got {encoder_block!r}")
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
        self.grid = (img_size[0] // DOWNSAMPLING, img_size[1] // DOWNSAMPLING)

        self.encoder = ResidualEncoder(in_channels, encoder_widths, encoder_blocks, encoder_block)
        self.patch_embedding = nn.Conv2d(encoder_widths[3], hidden_size, 1)
        self.position_embedding = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], hidden_size))
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        self.embedding_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(hidden_size, num_heads, mlp_dim, dropout, attention_dropout) for _ in range(num_layers)
        )
        self.encoder_norm = nn.LayerNorm(hidden_size, eps=1e-6)

        self.conv_more = ConvBNReLU(hidden_size, head_width)
        skips = [encoder_widths[2], encoder_widths[1], encoder_widths[0], 0]
        ins = [head_width] + decoder_widths[:-1]
        self.decoder = nn.ModuleList(DecoderBlock(i, o, s) for i, o, s in zip(ins, decoder_widths, skips))
        self.head = nn.Conv2d(decoder_widths[-1], num_classes, 1)
        self.config = {
            "in_channels": in_channels, "num_classes": num_classes, "img_size": img_size,
            "encoder_widths": encoder_widths, "encoder_blocks": encoder_blocks, "encoder_block": encoder_block,
            "hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads, "mlp_dim": mlp_dim,
            "dropout": dropout, "attention_dropout": attention_dropout,
            "head_width": head_width, "decoder_widths": decoder_widths,
        }

    def position_embeddings(self, grid: tuple[int, int]) -> torch.Tensor:
        """(1, gh * gw, D) position embeddings for a token grid, resized bilinearly if it is not the built one."""
        if tuple(grid) == self.grid:
            return self.position_embedding
        d = self.position_embedding.shape[-1]
        pe = self.position_embedding.reshape(1, self.grid[0], self.grid[1], d).permute(0, 3, 1, 2)
        pe = F.interpolate(pe, size=tuple(grid), mode="bilinear", align_corners=False)
        return pe.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected a (batch, channels, H, W) input; got shape {tuple(x.shape)}")
        if any(s % DOWNSAMPLING for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} must be divisible by {DOWNSAMPLING}")
        feature, skips = self.encoder(x)
        tokens = self.patch_embedding(feature)  # (B, D, gh, gw)
        b, d, gh, gw = tokens.shape
        tokens = tokens.flatten(2).transpose(1, 2) + self.position_embeddings((gh, gw))
        tokens = self.embedding_dropout(tokens)
        for layer in self.layers:
            tokens = layer(tokens)
        tokens = self.encoder_norm(tokens)
        y = self.conv_more(tokens.transpose(1, 2).reshape(b, d, gh, gw))
        for block, skip in zip(self.decoder, skips + [None]):
            y = block(y, skip)
        return self.head(y)

    def gradcam_layer(self) -> nn.Module:
        """The last CUP block (full resolution, before the 1x1 head): what Grad-CAM explains."""
        return self.decoder[-1]


def create(**config) -> TransUNet:
    """Build a :class:`TransUNet` from a config dict (as saved in a model card)."""
    return TransUNet(**config)
