"""MediaPipe Selfie Segmentation (general, 256x256) as a torch module, for `selfie_segmentation.onnx`.

The ONNX file is a TensorFlow conversion (tf2onnx); this module follows that graph node for node: a small
MobileNetV3-style encoder down to 1/16, a gated head, three upsampling stages with squeeze-excite style
skip gates back to 1/2, and a stride-2 transposed conv to full size. TensorFlow "SAME" padding of the
stride-2 convs is asymmetric (more on the bottom/right), hence the explicit F.pad. Layers are registered
in graph order for `onnx_weights.load_convs`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SIZE = 256  # fixed input side


def _conv(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    # stride-2 convs get their TF-style padding in forward(); stride-1 ones pad symmetrically
    return nn.Conv2d(cin, cout, k, stride, padding=0 if stride > 1 else k // 2, groups=groups)


def _same_pad(x: Tensor, k: int) -> Tensor:
    # TF "SAME" for stride 2 on an even size: total k - 2, the extra pixel at the bottom/right
    total = k - 2
    return F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))


class Gate(nn.Module):
    """x * sigmoid(fc2(relu(fc1(mean(x))))): squeeze-excite with a sigmoid gate."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1 = _conv(channels, squeeze)
        self.fc2 = _conv(squeeze, channels)

    def weights(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)), inplace=True)))


class Block(nn.Module):
    """expand 1x1 -> depthwise kxk -> [gate] -> project 1x1 (+ skip)."""

    def __init__(self, cin: int, exp: int, cout: int, k: int, stride: int, gate: int, hswish: bool):
        super().__init__()
        self.k, self.stride = k, stride
        self.hswish = hswish
        self.expand = _conv(cin, exp)
        self.dw = _conv(exp, exp, k, stride, groups=exp)
        self.gate = Gate(exp, gate) if gate else None
        self.project = _conv(exp, cout)
        self.residual = stride == 1 and cin == cout

    def act(self, x: Tensor) -> Tensor:
        # in place: every activation here applies to a fresh conv output
        return F.hardswish(x, inplace=True) if self.hswish else F.relu(x, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.expand(x))
        if self.stride > 1:
            y = _same_pad(y, self.k)
        y = self.act(self.dw(y))
        if self.gate is not None:
            y = y.mul_(self.gate.weights(y))
        y = self.project(y)
        return y.add_(x) if self.residual else y


class UpStage(nn.Module):
    """Upsample 2x, project to the skip's width, gate the skip, refine with a residual depthwise conv."""

    def __init__(self, cin: int, cskip: int):
        super().__init__()
        self.up_conv = _conv(cin, cskip)
        self.gate = Gate(cskip, cskip)
        self.conv = _conv(cskip, cskip)
        self.dw = _conv(cskip, cskip, 3, groups=cskip)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        u = self.up_conv(F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False))
        y = torch.addcmul(u, skip, self.gate.weights(skip + u))
        y = F.relu(self.conv(y), inplace=True)
        return y.add_(F.relu(self.dw(y), inplace=True))


class SelfieSegmentation(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = _conv(3, 16, 3, stride=2)
        # b1 has a 1x1 "expand" to the same width, unlike MobileNetV3's first block
        self.b1 = Block(16, 16, 16, 3, 2, gate=8, hswish=False)
        self.b2 = Block(16, 72, 24, 3, 2, gate=0, hswish=False)
        self.b3 = Block(24, 88, 24, 3, 1, gate=0, hswish=False)
        self.b4 = Block(24, 96, 32, 5, 2, gate=24, hswish=True)
        self.b5 = Block(32, 128, 32, 5, 1, gate=32, hswish=True)
        self.b6 = Block(32, 128, 32, 5, 1, gate=32, hswish=True)
        self.b7 = Block(32, 96, 32, 5, 1, gate=24, hswish=True)
        self.b8 = Block(32, 96, 32, 5, 1, gate=24, hswish=True)
        self.head_gate = _conv(32, 128)  # runs first in the graph
        self.head = _conv(32, 128)
        self.up1 = UpStage(128, 24)
        self.up2 = UpStage(24, 16)
        self.up3 = UpStage(16, 16)
        self.segment = nn.ConvTranspose2d(16, 1, 2, 2, bias=True)  # bias: the graph's folded Add

    def forward(self, x: Tensor) -> Tensor:
        # x: [B, 3, 256, 256] RGB 0..1 -> [B, 1, 256, 256] person probability 0..1
        x1 = F.hardswish(self.stem(_same_pad(x, 3)), inplace=True)  # [B, 16, 128, 128]
        x2 = self.b1(x1)  # [B, 16, 64, 64]
        x3 = self.b3(self.b2(x2))  # [B, 24, 32, 32]
        x4 = self.b8(self.b7(self.b6(self.b5(self.b4(x3)))))  # [B, 32, 16, 16]
        gate = torch.sigmoid(self.head_gate(x4.mean((2, 3), keepdim=True)))
        y = F.relu(self.head(x4), inplace=True).mul_(gate)
        y = self.up1(y, x3)  # [B, 24, 32, 32]
        y = self.up2(y, x2)  # [B, 16, 64, 64]
        y = self.up3(y, x1)  # [B, 16, 128, 128]
        return self.segment(y).sigmoid_()
