"""Robust Video Matting (MobileNetV3-Large backbone) as a torch module, for the exported ONNX weights.

Architecture after Lin et al., "Robust High-Resolution Video Matting with Temporal Guidance" (WACV 2022),
PeterL1n/RobustVideoMatting (GPL-3.0), written against the graph of `rvm_mobilenetv3_fp32.onnx`: BatchNorm
is folded into the convolutions there, so every conv here carries a bias and there is no BN layer.
Single-frame form: src is [B, 3, H, W] and the four recurrent states travel in and out of `forward`.
Layers are registered in the order the exported graph runs them; `onnx_weights.load_convs` relies on it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _conv(cin: int, cout: int, k: int = 1, stride: int = 1, dilation: int = 1, groups: int = 1, bias=True):
    return nn.Conv2d(
        cin, cout, k, stride, padding=(k - 1) // 2 * dilation, dilation=dilation, groups=groups, bias=bias
    )


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1 = _conv(channels, squeeze)
        self.fc2 = _conv(squeeze, channels)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s), inplace=True)), inplace=True)
        return x.mul_(s)  # x is the block's own intermediate, free to overwrite


class InvertedResidual(nn.Module):
    """MobileNetV3 block: [expand 1x1] -> depthwise kxk -> [squeeze-excite] -> project 1x1 (+ skip)."""

    def __init__(
        self, cin: int, k: int, exp: int, cout: int, se: bool, hswish: bool, stride: int, dilation=1
    ):
        super().__init__()
        self.hswish = hswish
        self.expand = _conv(cin, exp) if exp != cin else None
        self.dw = _conv(exp, exp, k, stride, dilation, groups=exp)
        self.se = SqueezeExcite(exp, _make_divisible(exp // 4)) if se else None
        self.project = _conv(exp, cout)
        self.residual = stride == 1 and cin == cout

    def act(self, x: Tensor) -> Tensor:
        # in place: every activation here applies to a fresh conv output (saves an allocation and a pass)
        return F.hardswish(x, inplace=True) if self.hswish else F.relu(x, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.expand(x)) if self.expand is not None else x
        y = self.act(self.dw(y))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return y.add_(x) if self.residual else y


def _make_divisible(v: int, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


# MobileNetV3-Large: (in, kernel, expanded, out, squeeze-excite, hardswish, stride, dilation). The last
# stage is dilated instead of strided (output stride 16), as RVM's encoder uses it.
_MBV3_LARGE = [
    (16, 3, 16, 16, False, False, 1, 1),
    (16, 3, 64, 24, False, False, 2, 1),
    (24, 3, 72, 24, False, False, 1, 1),
    (24, 5, 72, 40, True, False, 2, 1),
    (40, 5, 120, 40, True, False, 1, 1),
    (40, 5, 120, 40, True, False, 1, 1),
    (40, 3, 240, 80, False, True, 2, 1),
    (80, 3, 200, 80, False, True, 1, 1),
    (80, 3, 184, 80, False, True, 1, 1),
    (80, 3, 184, 80, False, True, 1, 1),
    (80, 3, 480, 112, True, True, 1, 1),
    (112, 3, 672, 112, True, True, 1, 1),
    (112, 5, 672, 160, True, True, 1, 2),
    (160, 5, 960, 160, True, True, 1, 2),
    (160, 5, 960, 160, True, True, 1, 2),
]


class MobileNetV3Encoder(nn.Module):
    mean: Tensor
    std: Tensor

    def __init__(self):
        super().__init__()
        self.stem = _conv(3, 16, 3, stride=2)
        self.blocks = nn.ModuleList(InvertedResidual(*cfg) for cfg in _MBV3_LARGE)
        self.head = _conv(160, 960)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # x: [B, 3, h, w] float 0..1 -> f1 [B, 16, h/2], f2 [B, 24, h/4], f3 [B, 40, h/8], f4 [B, 960, h/16]
        x = (x - self.mean) / self.std
        x = F.hardswish(self.stem(x), inplace=True)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in (0, 2, 5):
                feats.append(x)
        f4 = F.hardswish(self.head(x), inplace=True)
        return feats[0], feats[1], feats[2], f4


class LRASPP(nn.Module):
    def __init__(self, cin: int = 960, cout: int = 128):
        super().__init__()
        self.aspp1 = _conv(cin, cout)
        self.aspp2 = _conv(cin, cout, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.aspp2(x.mean((2, 3), keepdim=True)))
        return F.relu(self.aspp1(x), inplace=True).mul_(gate)


class ConvGRU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.ih = _conv(channels * 2, channels * 2, 3)
        self.hh = _conv(channels * 2, channels, 3)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        # x, h: [B, C, h, w]; h may be a [1, 1, 1, 1] zero placeholder on the first frame
        h = h.expand_as(x)
        r, z = self.ih(torch.cat([x, h], dim=1)).sigmoid_().split(self.channels, dim=1)
        c = self.hh(torch.cat([x, r * h], dim=1)).tanh_()
        return torch.lerp(h, c, z)  # (1 - z) * h + z * c


class BottleneckBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.split_at = channels // 2  # first half passes through, second half is recurrent
        self.gru = ConvGRU(self.split_at)

    def forward(self, x: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        a, b = x.split(self.split_at, dim=1)
        r = self.gru(b, r)
        return torch.cat([a, r], dim=1), r


def _up2_crop(x: Tensor, like: Tensor) -> Tensor:
    x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return x[:, :, : like.shape[2], : like.shape[3]]


def _in_slices(conv: nn.Conv2d, *sizes: int) -> tuple[Tensor, ...]:
    """`conv`'s weight cut along its input channels into `sizes`, channels-last like the activations.

    A conv over a channel concatenation is the sum of convs over the parts, one weight slice each. The
    concatenations this network makes join a 3-channel image to tens of channels, which channels-last
    tensors copy slowly (pixel by pixel: ~3 ms for 32 + 3 channels at 320x180), and the part that
    needs no recurrent state can run ahead on another thread. Cached until the weight changes."""
    w = conv.weight
    version = 0 if w.is_inference() else w._version  # inference tensors keep no version counter
    key = (w.data_ptr(), w.dtype, w.device, version, sizes)
    cached = conv.__dict__.get("_vbg_in_slices")
    if cached is None or cached[0] != key:
        parts = tuple(p.contiguous(memory_format=torch.channels_last) for p in w.split(sizes, dim=1))
        cached = (key, parts)
        conv.__dict__["_vbg_in_slices"] = cached  # one assignment: a racing thread sees old or new
    return cached[1]


def _conv_as(conv: nn.Conv2d, x: Tensor, weight: Tensor, bias: bool) -> Tensor:
    return F.conv2d(x, weight, conv.bias if bias else None, conv.stride, conv.padding, conv.dilation)


class UpsamplingBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, csrc: int, cout: int):
        super().__init__()
        self.conv = _conv(cin + cskip + csrc, cout, 3)
        self.sizes = (cin, cskip, csrc)  # the conv's input: [upsampled x, f, s]
        self.split_at = cout // 2
        self.gru = ConvGRU(self.split_at)

    def skip(self, f: Tensor, s: Tensor) -> Tensor:
        """The conv's part over the encoder feature f and the image s (no recurrent state), bias
        included: [B, cout, h, w]; `step` adds the part over the decoder's own input."""
        _, wf, ws = _in_slices(self.conv, *self.sizes)
        return _conv_as(self.conv, f, wf, True).add_(_conv_as(self.conv, s, ws, False))

    def step(self, x: Tensor, skip: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        wx = _in_slices(self.conv, *self.sizes)[0]
        y = _conv_as(self.conv, _up2_crop(x, skip), wx, False).add_(skip)
        a, b = F.relu(y, inplace=True).split(self.split_at, dim=1)
        r = self.gru(b, r)
        return torch.cat([a, r], dim=1), r

    def forward(self, x: Tensor, f: Tensor, s: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        return self.step(x, self.skip(f, s), r)


class OutputBlock(nn.Module):
    def __init__(self, cin: int, csrc: int, cout: int):
        super().__init__()
        self.conv1 = _conv(cin + csrc, cout, 3)
        self.sizes = (cin, csrc)  # conv1's input: [upsampled x, s]
        self.conv2 = _conv(cout, cout, 3)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        wx, ws = _in_slices(self.conv1, *self.sizes)
        y = _conv_as(self.conv1, s, ws, True).add_(_conv_as(self.conv1, _up2_crop(x, s), wx, False))
        return F.relu(self.conv2(F.relu(y, inplace=True)), inplace=True)


class RecurrentDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.decode4 = BottleneckBlock(128)
        self.decode3 = UpsamplingBlock(128, 40, 3, 80)
        self.decode2 = UpsamplingBlock(80, 24, 3, 40)
        self.decode1 = UpsamplingBlock(40, 16, 3, 32)
        self.decode0 = OutputBlock(32, 3, 16)

    def skips(self, s0: Tensor, f1: Tensor, f2: Tensor, f3: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The stateless part of decode1..3 on any number of frames: s0 [B, 3, h, w] and the encoder's
        f1..f3 -> each block's conv over [f, s] (bias included): k1 [B, 32, h/2, w/2], k2 [B, 40, h/4,
        w/4], k3 [B, 80, h/8, w/8]. May run ahead of `recurrent`, on another thread."""
        # s0's 2x average-pool pyramid feeds every block
        s1 = F.avg_pool2d(s0, 2, 2, ceil_mode=True, count_include_pad=False)
        s2 = F.avg_pool2d(s1, 2, 2, ceil_mode=True, count_include_pad=False)
        s3 = F.avg_pool2d(s2, 2, 2, ceil_mode=True, count_include_pad=False)
        return self.decode1.skip(f1, s1), self.decode2.skip(f2, s2), self.decode3.skip(f3, s3)

    def recurrent(self, f4: Tensor, k1: Tensor, k2: Tensor, k3: Tensor, r1, r2, r3, r4):
        """The blocks that carry state, one frame: f4 (after LR-ASPP) and `skips` -> x1 [1, 32, h/2,
        w/2], r1..r4. `decode0` (the largest block, at full network resolution) feeds no state: it runs
        after, on any number of frames at once and on another thread."""
        x4, r4 = self.decode4(f4, r4)
        x3, r3 = self.decode3.step(x4, k3, r3)
        x2, r2 = self.decode2.step(x3, k2, r2)
        x1, r1 = self.decode1.step(x2, k1, r1)
        return x1, r1, r2, r3, r4

    def forward(self, s0: Tensor, f1, f2, f3, f4, r1, r2, r3, r4):
        # s0: [B, 3, h, w] -> hid [B, 16, h, w], r1..r4
        x1, r1, r2, r3, r4 = self.recurrent(f4, *self.skips(s0, f1, f2, f3), r1, r2, r3, r4)
        return self.decode0(x1, s0), r1, r2, r3, r4


class DeepGuidedFilter(nn.Module):
    """Fast deep guided filter: per-pixel affine (A, b) fitted at low res, applied at full res."""

    to_x: Tensor  # [4, 3, 1, 1] rgb -> [rgb, mean(rgb)], a buffer

    def __init__(self, hid: int = 16):
        super().__init__()
        # A 3x3 box at initialisation; the released weights were trained, so they come from the graph.
        self.box_filter = nn.Conv2d(4, 4, 3, padding=1, bias=False, groups=4)
        self.conv1 = _conv(4 * 2 + hid, hid)
        self.conv2 = _conv(hid, hid)
        self.conv3 = _conv(hid, 4)
        to_x = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3]]).view(4, 3, 1, 1)
        self.register_buffer("to_x", to_x, persistent=False)

    def coefficients(
        self, base_src: Tensor, base_y: Tensor, hid: Tensor, alpha_only: bool = False
    ) -> tuple[Tensor, Tensor]:
        """base_src [B, 3, h, w], base_y [B, 4, h, w] (fgr residual, pha), hid [B, 16, h, w] -> A, b
        [B, 4, h, w]; [B, 1, h, w] (the alpha row only) with `alpha_only`."""
        # [rgb, mean(rgb)] as a 1x1 conv: concatenating 3 channels and 1 is slow in channels-last
        base_x = F.conv2d(base_src, self.to_x)  # [B, 4, h, w]
        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y).sub_(mean_x * mean_y)
        var_x = self.box_filter(base_x * base_x).sub_(mean_x * mean_x)
        # conv1 over [cov_xy, var_x, hid], one weight slice per part (see _in_slices)
        wc, wv, wh = _in_slices(self.conv1, 4, 4, hid.shape[1])
        a = _conv_as(self.conv1, hid, wh, True)
        a = a.add_(_conv_as(self.conv1, cov_xy, wc, False)).add_(_conv_as(self.conv1, var_x, wv, False))
        a = F.relu(self.conv2(F.relu(a, inplace=True)), inplace=True)
        if alpha_only:
            a = F.conv2d(a, self.conv3.weight[3:], self.conv3.bias[3:])  # type: ignore[index]
            return a, mean_y[:, 3:] - a * mean_x[:, 3:]
        a = self.conv3(a)
        return a, mean_y - a * mean_x


class RVM(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = MobileNetV3Encoder()
        self.aspp = LRASPP()
        self.decoder = RecurrentDecoder()
        self.project_mat = _conv(16, 4)
        self.refiner = DeepGuidedFilter()

    def features(self, src_sm: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The stateless part, per frame: src_sm [T, 3, h, w] 0..1 -> f4 (the encoder's last features
        after LR-ASPP) and the decoder's `skips` k1..k3. Needs no earlier frame, so it may run ahead of
        `decode_seq` on another thread."""
        f1, f2, f3, f4 = self.backbone(src_sm)
        return (self.aspp(f4), *self.decoder.skips(src_sm, f1, f2, f3))

    def decode_seq(self, src_sm: Tensor, feats: tuple[Tensor, Tensor, Tensor, Tensor], r1, r2, r3, r4):
        """The recurrent part over T consecutive frames of ONE stream, in order: src_sm [T, 3, h, w] and
        its `features` -> x1 [T, 32, h/2, w/2] (what `refine_seq` takes), the states after the last
        frame. Only the blocks that carry state step frame by frame here."""
        xs = []
        for t in range(src_sm.shape[0]):
            one = slice(t, t + 1)
            x1, r1, r2, r3, r4 = self.decoder.recurrent(*(f[one] for f in feats), r1, r2, r3, r4)
            xs.append(x1)  # [1, 32, h/2, w/2]
        x1 = torch.cat(xs) if len(xs) > 1 else xs[0]  # [T, 32, h/2, w/2]
        return x1, r1, r2, r3, r4

    def refine_seq(self, src_sm: Tensor, x1: Tensor, alpha_only: bool = False) -> tuple[Tensor, Tensor]:
        """The stateless rest on T frames at once: src_sm [T, 3, h, w], x1 from `decode_seq` -> A, b
        [T, 4, h, w] (guided-filter affine; [T, 1, h, w], the alpha row, with `alpha_only`). Needs no
        other frame, so it may run on another thread while `decode_seq` steps through the next ones."""
        hid = self.decoder.decode0(x1, src_sm)  # [T, 16, h, w]
        return self.refiner.coefficients(src_sm, self.project_mat(hid), hid, alpha_only)

    def coarse_seq(self, src_sm: Tensor, r1: Tensor, r2: Tensor, r3: Tensor, r4: Tensor):
        """`features`, `decode_seq` and `refine_seq` on T consecutive frames of one stream (src_sm already
        downsampled) -> A, b [T, 4, h, w], r1..r4. Batching T frames only changes float summation order,
        not the result."""
        x1, r1, r2, r3, r4 = self.decode_seq(src_sm, self.features(src_sm), r1, r2, r3, r4)
        a, b = self.refine_seq(src_sm, x1)
        return a, b, r1, r2, r3, r4

    def forward(self, src: Tensor, r1: Tensor, r2: Tensor, r3: Tensor, r4: Tensor, downsample_ratio: float):
        """Same contract as the ONNX export.

        src: [B, 3, H, W] RGB 0..1; r1..r4: states ([1, 1, 1, 1] zeros on the first frame).
        Returns fgr [B, 3, H, W], pha [B, 1, H, W] (both 0..1), r1..r4 (16/20/40/64 channels).
        """
        src_sm = downsample(src, downsample_ratio)
        a, b, r1, r2, r3, r4 = self.coarse_seq(src_sm, r1, r2, r3, r4)
        size = src.shape[2:]
        a = F.interpolate(a, size, mode="bilinear", align_corners=False)
        b = F.interpolate(b, size, mode="bilinear", align_corners=False)
        fine_x = torch.cat([src, src.mean(1, keepdim=True)], dim=1)
        out = a * fine_x + b
        fgr = (out[:, :3] + src).clamp(0.0, 1.0)
        pha = out[:, 3:].clamp(0.0, 1.0)
        return fgr, pha, r1, r2, r3, r4


def downsample(src: Tensor, ratio: float) -> Tensor:
    """[B, 3, H, W] -> [B, 3, floor(H*r), floor(W*r)]: bilinear without antialias, as the export does."""
    if ratio == 1.0:
        return src
    return F.interpolate(
        src, scale_factor=ratio, mode="bilinear", align_corners=False, recompute_scale_factor=False
    )
