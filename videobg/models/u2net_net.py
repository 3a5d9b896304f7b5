"""U²-Net small (U2NETP) and full as torch modules, for rembg's `u2netp.onnx` and `u2net.onnx`.

Architecture after Qin et al., "U²-Net: Going Deeper with Nested U-Structure for Salient Object
Detection" (Pattern Recognition 2020), xuebinqin/U-2-Net (Apache-2.0). The export folds BatchNorm into
the convolutions, so each REBNCONV here is conv (with bias) + ReLU. Layers are registered in the order
the graph runs them (encoder, decoder, side outputs, fuse) for `onnx_weights.load_convs`.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SIZE = 320  # fixed input side
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class ConvReLU(nn.Module):
    def __init__(self, cin: int, cout: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv(x), inplace=True)


def _pool(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 2, 2, ceil_mode=True)


def _up_like(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


class RSU(nn.Module):
    """Residual U-block of `height` levels; the deepest level uses a dilated conv instead of a pool."""

    def __init__(self, height: int, cin: int, mid: int, cout: int):
        super().__init__()
        self.conv_in = ConvReLU(cin, cout)
        self.enc = nn.ModuleList([ConvReLU(cout, mid)] + [ConvReLU(mid, mid) for _ in range(height - 2)])
        self.bottom = ConvReLU(mid, mid, dilation=2)
        self.dec = nn.ModuleList(
            [ConvReLU(mid * 2, mid) for _ in range(height - 2)] + [ConvReLU(mid * 2, cout)]
        )

    def forward(self, x: Tensor) -> Tensor:
        hx_in = self.conv_in(x)
        skips = []
        h = hx_in
        for i, conv in enumerate(self.enc):
            h = conv(_pool(h) if i > 0 else h)
            skips.append(h)
        h = self.bottom(h)
        for j, (conv, skip) in enumerate(zip(self.dec, reversed(skips), strict=True)):
            # the first decoder conv works at the bottom's resolution; each later one a level up
            h = conv(torch.cat([_up_like(h, skip) if j > 0 else h, skip], dim=1))
        return h.add_(hx_in)


class RSUF(nn.Module):
    """Flat residual U-block (RSU-4F): dilations 1, 2, 4, 8 instead of pooling."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.conv_in = ConvReLU(cin, cout)
        self.enc = nn.ModuleList([ConvReLU(cout, mid, 1), ConvReLU(mid, mid, 2), ConvReLU(mid, mid, 4)])
        self.bottom = ConvReLU(mid, mid, 8)
        self.dec = nn.ModuleList(
            [ConvReLU(mid * 2, mid, 4), ConvReLU(mid * 2, mid, 2), ConvReLU(mid * 2, cout, 1)]
        )

    def forward(self, x: Tensor) -> Tensor:
        hx_in = self.conv_in(x)
        skips = []
        h = hx_in
        for conv in self.enc:
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for conv, skip in zip(self.dec, reversed(skips), strict=True):
            h = conv(torch.cat([h, skip], dim=1))
        return h.add_(hx_in)


# (height, in, mid, out; height 0 = the flat RSU-4F) per stage: encoder 1..6, then decoder 5d..1d (Qin et al., Table 1)
_SMALL = {
    "stage1": (7, 3, 16, 64), "stage2": (6, 64, 16, 64), "stage3": (5, 64, 16, 64),
    "stage4": (4, 64, 16, 64), "stage5": (0, 64, 16, 64), "stage6": (0, 64, 16, 64),
    "stage5d": (0, 128, 16, 64), "stage4d": (4, 128, 16, 64), "stage3d": (5, 128, 16, 64),
    "stage2d": (6, 128, 16, 64), "stage1d": (7, 128, 16, 64),
}  # fmt: skip
_FULL = {
    "stage1": (7, 3, 32, 64), "stage2": (6, 64, 32, 128), "stage3": (5, 128, 64, 256),
    "stage4": (4, 256, 128, 512), "stage5": (0, 512, 256, 512), "stage6": (0, 512, 256, 512),
    "stage5d": (0, 1024, 256, 512), "stage4d": (4, 1024, 128, 256), "stage3d": (5, 512, 64, 128),
    "stage2d": (6, 256, 32, 64), "stage1d": (7, 128, 16, 64),
}  # fmt: skip
# side output i reads (in the order registered) stage1d, 2d, 3d, 4d, 5d, 6
_SIDE_FROM = ("stage1d", "stage2d", "stage3d", "stage4d", "stage5d", "stage6")


class U2Net(nn.Module):
    """U²-Net: `full=False` is U2NETP (4.7 MB, rembg's u2netp.onnx), `full=True` the full model
    (176 MB, u2net.onnx). Same graph, wider channels."""

    mean: Tensor
    std: Tensor

    def __init__(self, full: bool = False):
        super().__init__()
        table = _FULL if full else _SMALL
        for name, (height, cin, mid, cout) in table.items():
            block = RSUF(cin, mid, cout) if height == 0 else RSU(height, cin, mid, cout)
            self.add_module(name, block)
        self.side = nn.ModuleList(nn.Conv2d(table[src][3], 1, 3, padding=1) for src in _SIDE_FROM)
        self.outconv = nn.Conv2d(6, 1, 1)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor, all_sides: bool = False) -> Tensor | list[Tensor]:
        """x: [B, 3, 320, 320] ImageNet-normalised RGB -> fused saliency [B, 1, 320, 320] 0..1.

        all_sides=True returns the seven maps in the export's output order (fused, side1..side6).
        """
        block = cast(dict[str, nn.Module], dict(self.named_children()))
        enc = []
        h = x
        for i, name in enumerate(("stage1", "stage2", "stage3", "stage4", "stage5")):
            h = block[name](_pool(h) if i > 0 else h)
            enc.append(h)
        h = block["stage6"](_pool(h))
        dec = [h]
        for name, skip in zip(
            ("stage5d", "stage4d", "stage3d", "stage2d", "stage1d"), reversed(enc), strict=True
        ):
            h = block[name](torch.cat([_up_like(h, skip), skip], dim=1))
            dec.append(h)
        # dec: stage6, 5d, 4d, 3d, 2d, 1d; side i reads the decoder output at level i
        d1 = self.side[0](dec[5])
        sides = [d1] + [_up_like(self.side[i](dec[5 - i]), d1) for i in range(1, 6)]
        fused = self.outconv(torch.cat(sides, dim=1))
        if all_sides:
            return [torch.sigmoid(t) for t in [fused, *sides]]
        return torch.sigmoid(fused)

    def normalise(self, rgb01: Tensor) -> Tensor:
        return (rgb01 - self.mean) / self.std


class U2NetP(U2Net):
    def __init__(self) -> None:
        super().__init__(full=False)
