"""Resampling layers: Upsample (UpsamplingNearest2d, UpsamplingBilinear2d), PixelShuffle, PixelUnshuffle, with
PyTorch's names, signatures and index arithmetic (the math is in ``minigrad.functional.resample``).

    Upsample        y = A_h x A_w^T (nearest: one source per output; bilinear: two weights per axis)
                    dx = A_h^T dy A_w
    PixelShuffle    (*, C r^2, H, W) -> (*, C, H r, W r), a reshape and a transpose; dx: the inverse permutation
    PixelUnshuffle  (*, C, H r, W r) -> (*, C r^2, H, W); dx: the inverse permutation
"""
from __future__ import annotations

from ..functional import resample as R
from ..runtime.backend import backend_of
from ..runtime.checks import check_grad_like
from .layer import Layer

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle", "PixelUnshuffle",
           "SpaceToDepth", "DepthToSpace"]


class Upsample(Layer):
    """Resize (N, C, H, W) with mode 'nearest', 'nearest-exact' or 'bilinear' (or (N, C, W) with 'nearest',
    'nearest-exact' or 'linear') to ``size`` or by ``scale_factor`` (float or per-axis tuple, any positive value:
    1.5 and 0.5 included). As PyTorch, a given scale factor sets both the output size, floor(in * scale_factor),
    and the sampling step 1/scale_factor, unless recompute_scale_factor=True (then the step is in/out).

    x: (N, C, H, W) -> (N, C, OH, OW). Caches the per-axis indices and weights.
    """
    FORWARD_COPIES = 0      # forward checks its exact output bytes itself (the output can be larger than x)

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor = tuple(float(factor) for factor in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners, self.recompute_scale_factor = mode, align_corners, recompute_scale_factor
        self._resolved(type(self).__name__)           # bad options fail here, not at the first forward

    def _resolved(self, where):
        return R.interpolate_options(self.size, self.scale_factor, self.mode, self.align_corners,
                                     self.recompute_scale_factor, where)

    def forward(self, input):
        """input: (N, C, H, W) -> (N, C, OH, OW)."""
        y, self._cache = R.interpolate_forward(input, self._resolved(self.label), self.label)
        return y

    def backward(self, grad_out):
        """grad_out: (N, C, OH, OW) -> (N, C, H, W): each dy spread back with its interpolation weights."""
        return R.interpolate_backward(self.take_cache(), grad_out, self.label)

    def extra_repr(self):
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Upsample(size, scale_factor, mode='nearest') under PyTorch's older name."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Upsample(size, scale_factor, mode='bilinear', align_corners=True) under PyTorch's older name."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class _Shuffle(Layer):
    """A pure permutation of the input's entries: forward caches the input's shape, backend and dtype."""
    FORWARD_COPIES = 1

    def forward(self, input):
        y = self._forward(input, self._factor, self.label)
        self._cache = (tuple(input.shape), tuple(y.shape), backend_of(input), input.dtype)
        return y

    def backward(self, grad_out):
        _, out_shape, backend, dtype = self.take_cache()
        check_grad_like(grad_out, self.label, out_shape, backend, dtype)
        return self._inverse(grad_out, self._factor, self.label)


class PixelShuffle(_Shuffle):
    """(*, C r^2, H, W) -> (*, C, H r, W r): input channel c r^2 + i r + j becomes pixel (h r + i, w r + j).
    Backward: pixel unshuffle of the gradient."""
    _forward, _inverse = staticmethod(R.pixel_shuffle_forward), staticmethod(R.pixel_unshuffle_forward)

    def __init__(self, upscale_factor: int):
        super().__init__()
        self.upscale_factor = R.check_factor(upscale_factor, "upscale_factor", "PixelShuffle")

    @property
    def _factor(self):
        return self.upscale_factor

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(_Shuffle):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of PixelShuffle. Backward: pixel shuffle of the gradient."""
    _forward, _inverse = staticmethod(R.pixel_unshuffle_forward), staticmethod(R.pixel_shuffle_forward)

    def __init__(self, downscale_factor: int):
        super().__init__()
        self.downscale_factor = R.check_factor(downscale_factor, "downscale_factor", "PixelUnshuffle")

    @property
    def _factor(self):
        return self.downscale_factor

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"


class SpaceToDepth(_Shuffle):
    """ONNX's SpaceToDepth (what mg.onnx.load builds for it; not a torch.nn layer): (N, C, H b, W b) ->
    (N, b^2 C, H, W) with output channel (i b + j) C + c, where PixelUnshuffle has c b^2 + i b + j.
    Backward: DepthToSpace (mode DCR) of the gradient."""
    _forward, _inverse = staticmethod(R.space_to_depth), staticmethod(R.depth_to_space_dcr)

    def __init__(self, blocksize: int):
        super().__init__()
        self.blocksize = R.check_factor(blocksize, "blocksize", type(self).__name__)

    @property
    def _factor(self):
        return self.blocksize

    def extra_repr(self):
        return f"blocksize={self.blocksize}"


class DepthToSpace(SpaceToDepth):
    """ONNX's DepthToSpace in mode DCR, the inverse of SpaceToDepth (mode CRD is PixelShuffle)."""
    _forward, _inverse = staticmethod(R.depth_to_space_dcr), staticmethod(R.space_to_depth)
