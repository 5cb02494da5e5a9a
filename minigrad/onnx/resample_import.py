"""mg.onnx.load's side of the resampling and padding layers (a mixin of load.py's importer, ``ResampleOps``):

    Resize (nearest: asymmetric + floor, half_pixel / tf_half_pixel_for_nn + round; linear: half_pixel,
            pytorch_half_pixel, align_corners; scales or sizes)                  -> Upsample
    DepthToSpace CRD / DCR, SpaceToDepth                                       -> PixelShuffle / DepthToSpace /
                                                                                  SpaceToDepth (nn/resample.py)
    Reshape -> Transpose -> Reshape of a pixel (un)shuffle                     -> PixelShuffle / PixelUnshuffle
    a 4-D Pad not folded into the one Conv right after it (load.py's op_Pad folds a non-negative zero Pad into
    the Conv's symmetric padding, or a reflect/edge/wrap Pad into an unpadded Conv's padding_mode)
                                                                               -> ZeroPad2d, ConstantPad2d,
                                                                                  ReflectionPad2d, ...
"""
from __future__ import annotations

import math

import numpy

from ..functional import resample as R          # PyTorch's index arithmetic, as export (resample_ops.py)
from ..nn import (CircularPad2d, ConstantPad2d, PixelShuffle, PixelUnshuffle, ReflectionPad2d, ReplicationPad2d,
                  Upsample, ZeroPad2d)
from ..nn.resample import DepthToSpace, SpaceToDepth
from .common import OnnxError
from .importer import Dim, decimal

__all__ = ["ResampleOps"]

_PAD_LAYERS = {"reflect": ReflectionPad2d, "edge": ReplicationPad2d, "wrap": CircularPad2d}

_FROM_RESIZE = {("nearest", "asymmetric", "floor"): "nearest",
                ("nearest", "half_pixel", "round_prefer_ceil"): "nearest-exact",
                ("nearest", "tf_half_pixel_for_nn", "floor"): "nearest-exact"}
_SHUFFLE_PERMS = {(0, 1, 3, 5, 2, 4): PixelUnshuffle, (0, 1, 4, 2, 5, 3): PixelShuffle}


_MAX_LENGTH = 1 << 24      # float32 counts pixels exactly up to here


def _onnx_nearest(n, o, scale, transform):
    """ONNX Runtime's nearest source indices (float32) for the forms read as an Upsample: asymmetric + floor,
    half_pixel + round_prefer_ceil, tf_half_pixel_for_nn + floor."""
    f32 = numpy.float32
    dst, scale = numpy.arange(o, dtype=f32), f32(scale)
    if transform == "asymmetric":
        src = numpy.floor(dst / scale)
    elif transform == "half_pixel":
        src = numpy.floor((dst + f32(0.5)) / scale - f32(0.5) + f32(0.5))     # round_prefer_ceil
    else:
        src = numpy.floor((dst + f32(0.5)) / scale)
    return numpy.clip(src, 0, n - 1).astype(numpy.int64)


class ResampleOps:
    """Mixed into the importer (minigrad/onnx/load.py), before ``Importer`` among its bases: Resize, DepthToSpace,
    SpaceToDepth, the pixel (un)shuffle Reshape chains (``convert``) and standalone Pads (``convert``)."""

    def run(self, model):
        self._consumers, self._chain = {}, {}
        for node in model.graph.node:
            for name in node.input:
                self._consumers.setdefault(name, []).append(node)
        return super().run(model)

    def _only_consumer(self, name):
        users = self.__dict__.get("_consumers", {}).get(name, [])
        return users[0] if len(users) == 1 and self.uses.get(name) == 1 else None

    def convert(self, node):
        key = node.output[0] if node.output else None
        chain = self.__dict__.get("_chain", {})
        if key in chain:                                          # the Transpose inside a pixel (un)shuffle chain
            return None
        if node.op_type == "Reshape" and node.input and node.input[0] in chain:
            return self._finish_shuffle(node, *chain[node.input[0]])
        if node.op_type == "Reshape" and self._start_shuffle(node):
            return None
        if node.op_type == "Pad" and node.input and node.input[0] in self.values and \
                len(self.shapes.get(node.input[0]) or []) == 4 and not self._pad_folds(node):
            return self._pad_layer(node)
        if node.op_type == "Slice" and node.input and all(n in self.consts for n in node.input if n):
            return self._fold_slice(node)
        return super().convert(node)

    def _fold_slice(self, node):
        """A Slice of constants (torch's Upsample(size=...) slices Shape(x) to [N, C] for Resize's sizes)."""
        self.attrs(node, set())
        data, *bounds = [self.consts[n] if n else None for n in node.input]
        starts, ends = (b.astype("int64").tolist() for b in bounds[:2])
        axes = bounds[2].astype("int64").tolist() if len(bounds) > 2 and bounds[2] is not None else \
            list(range(len(starts)))
        steps = bounds[3].astype("int64").tolist() if len(bounds) > 3 and bounds[3] is not None else [1] * len(starts)
        index = [slice(None)] * data.ndim
        for start, end, axis, step in zip(starts, ends, axes, steps):
            index[axis] = slice(start, end, step)         # Python's clamping of out-of-range bounds, as ONNX's
        self.consts[node.output[0]] = data[tuple(index)]

    # -- Pad ------------------------------------------------------------------------------------------------
    def _pad_args(self, node):
        """(pads [8], mode, value) of a 4-D Pad node, checked (spatial.py's pad_arguments; any constant value)."""
        return self.pad_arguments(node, 4, zero_value=False)

    def _pad_folds(self, node):
        """True when load.py's op_Pad folds this Pad into the one Conv that reads it (its padding or mode)."""
        conv = self._only_consumer(node.output[0])
        if conv is None or conv.op_type != "Conv" or conv.input[0] != node.output[0]:
            return False
        try:
            pads, mode, value = self._pad_args(node)
        except OnnxError:
            return True                                 # op_Pad reports it
        if min(pads) < 0 or value != 0.0:
            return False
        conv_attrs = {a.name: self.onnx.helper.get_attribute_value(a) for a in conv.attribute}
        if conv_attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            return False
        conv_pads = list(conv_attrs.get("pads") or [0, 0, 0, 0])
        if len(conv_pads) != 4 or len(pads) != 8:
            return True                                 # op_Pad / op_Conv report the malformed pads
        if mode != "constant" and any(conv_pads):
            return False
        top, left, bottom, right = (a + b for a, b in zip(conv_pads, [pads[2], pads[3], pads[6], pads[7]]))
        return (top, left) == (bottom, right)           # the Conv's own (symmetric) padding, or a pad layer

    def _pad_layer(self, node):
        pads, mode, value = self._pad_args(node)
        padding = (pads[3], pads[7], pads[2], pads[6])      # ONNX (t, l, b, r) per axis -> (left, right, top, bottom)
        if mode == "constant":
            layer = ZeroPad2d(padding) if value == 0.0 else ConstantPad2d(padding, value)
        else:
            layer = _PAD_LAYERS[mode](padding)
        self.add(node, layer, [node.input[0]])

    # -- Resize ---------------------------------------------------------------------------------------------
    def op_Resize(self, node):
        attrs = self.attrs(node, {"mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
                                  "exclude_outside", "extrapolation_value", "antialias", "axes",
                                  "keep_aspect_ratio_policy"})
        x = node.input[0]
        rank = len(self.shapes.get(x) or [])
        if rank not in (3, 4):
            raise self.fail(node, f"input of rank {rank or 'unknown'} is not supported (3-D (N, C, W) or 4-D)")
        for name, default in (("exclude_outside", 0), ("antialias", 0), ("keep_aspect_ratio_policy", "stretch")):
            self.require(node, attrs.get(name, default) == default, name, attrs.get(name), f"only {default!r}")
        axes = attrs.get("axes")
        if axes is not None:
            self.require(node, sorted(a % rank for a in axes) == list(range(2, rank)), "axes", axes,
                         "the spatial axes")
        mode = attrs.get("mode", "nearest")
        transform = attrs.get("coordinate_transformation_mode", "half_pixel")
        rounding = attrs.get("nearest_mode", "round_prefer_floor")
        align_corners = None
        if mode == "nearest":
            ours = _FROM_RESIZE.get((mode, transform, rounding))
            if ours is None:
                raise self.fail(node, f"attributes coordinate_transformation_mode={transform!r} and nearest_mode="
                                      f"{rounding!r} are not supported for mode 'nearest' (asymmetric + floor: "
                                      "PyTorch's nearest; half_pixel + round_prefer_ceil: nearest-exact)")
        elif mode == "linear":
            self.require(node, transform in ("half_pixel", "pytorch_half_pixel", "align_corners"),
                         "coordinate_transformation_mode", transform, "half_pixel, pytorch_half_pixel or align_corners")
            ours, align_corners = ("bilinear" if rank == 4 else "linear"), transform == "align_corners"
        else:
            raise self.fail(node, f"attribute 'mode' = {mode!r} is not supported (nearest or linear)")
        size, scale_factor, steps = self._resize_target(node, x, rank, axes)
        size, scale_factor = self._same_sampling(node, x, size, scale_factor, steps, ours, transform)
        if transform == "pytorch_half_pixel":            # half_pixel except where an output length is 1
            out = size or tuple(int(n * s) if n else None for n, s in zip(self.shapes[x][2:], scale_factor))
            self.require(node, all(o is not None and o > 1 for o in out), "coordinate_transformation_mode",
                         transform, "half_pixel only: an output length of 1 (or unknown) differs")
        self.add(node, Upsample(size=size, scale_factor=scale_factor, mode=ours, align_corners=align_corners),
                 [x])

    def _same_sampling(self, node, x, size, scale_factor, steps, ours, transform):
        """-> (size, scale_factor) of an Upsample whose output lengths (and, nearest, source indices) on this
        input equal ONNX Runtime's for the Resize: it computes them in float32 from the float32 scales (o / n for
        sizes), PyTorch's arithmetic (minigrad's) from 1 / scale_factor (n / o for a size) and copies exactly where
        it doubles. The scale_factor read from the file is kept when it samples alike, else the sizes (the input's
        spatial size is fixed by the file); OnnxError when neither does, or when the input's size is unknown and
        the scales are neither integers nor powers of 2 (nearest: sizes neither), which sample alike on any size."""
        lengths = (self.shapes.get(x) or [None] * 3)[2:]
        nearest = ours.startswith("nearest")
        if None in lengths:
            exact = scale_factor is not None and all(float(s).is_integer() or math.frexp(s)[0] == 0.5
                                                     for s in scale_factor)      # an integer or a power of 2
            if not exact and (nearest or scale_factor is not None):
                given = [float(s) for s in steps] if scale_factor else list(size)
                raise self.fail(node, f"its input's spatial size {lengths} is unknown: a Resize by "
                                      f"{'scales' if scale_factor else 'sizes'} {given} samples as minigrad's "
                                      "Upsample for any size only with integer or power-of-2 scales")
            return size, scale_factor
        f32 = numpy.float32
        if scale_factor is not None:
            outs = []
            for n, step, factor in zip(lengths, steps, scale_factor):
                if not n * float(step) < _MAX_LENGTH or not n * factor < _MAX_LENGTH:
                    raise self.fail(node, f"its scale {float(step)!r} on an input length {n} gives an output length "
                                          f"beyond {_MAX_LENGTH} (2^24), where float32 no longer counts pixels exactly")
                onnx_out = (int(f32(n) * f32(step)), int(n * float(f32(step))))   # ONNX Runtime's, onnx's
                if onnx_out != (int(n * factor),) * 2:
                    raise self.fail(node, f"its scale {float(step)!r} on an input length {n} gives ONNX Runtime's "
                                          f"output length {onnx_out[0]} (shape inference's {onnx_out[1]}), minigrad's "
                                          f"Upsample(scale_factor={factor}) {int(n * factor)}")
                outs.append(onnx_out[0])
        else:
            outs = list(size)
            steps = [f32(o) / f32(n) for n, o in zip(lengths, outs)]
        if max(outs) > _MAX_LENGTH or max(lengths) > _MAX_LENGTH:
            raise self.fail(node, f"its output lengths {outs} on an input of spatial size {tuple(lengths)} are beyond "
                                  f"{_MAX_LENGTH} (2^24), where float32 no longer counts pixels exactly")
        if not nearest:                      # linear: the same weights within float rounding
            return size, scale_factor
        theirs = [_onnx_nearest(n, o, step, transform) for n, o, step in zip(lengths, outs, steps)]
        exact = ours == "nearest-exact"
        for given, factors in ((size, scale_factor), (tuple(outs), None)):
            if all(numpy.array_equal(R._nearest_index(n, o, None if factors is None else factors[i], exact), t)
                   for i, (n, o, t) in enumerate(zip(lengths, outs, theirs))):
                return given, factors
        given = f"scales {[float(s) for s in steps]}" if scale_factor else f"sizes {outs}"
        raise self.fail(node, f"its {given} on an input of spatial size {tuple(lengths)} pick other source pixels "
                              f"in ONNX Runtime (float32 steps) than minigrad's Upsample(mode={ours!r}) (PyTorch's "
                              "arithmetic)")

    def _resize_target(self, node, x, rank, axes):
        """-> (size, None, None) or (None, scale_factor, the file's scales) per spatial axis, from the sizes or the
        scales input."""
        spatial = rank - 2
        index = (1, None) if self.opset < 11 else (2, 3)
        scales = self.consts.get(node.input[index[0]]) if len(node.input) > index[0] and node.input[index[0]] else None
        sizes = (self.consts.get(node.input[index[1]]) if index[1] is not None and len(node.input) > index[1]
                 and node.input[index[1]] else None)
        for i in (i for i in index if i is not None and len(node.input) > i and node.input[i]):
            if node.input[i] not in self.consts:
                raise self.fail(node, f"its {'scales' if i == index[0] else 'sizes'} ('{node.input[i]}') are computed "
                                      "at run time; only constants (or the Shape of the input) are supported")
        scales = None if scales is None or scales.size == 0 else scales
        if (scales is None) == (sizes is None or sizes.size == 0):
            raise self.fail(node, "exactly one of its scales and sizes inputs must be given")
        given = (scales if scales is not None else sizes).reshape(-1)          # (rank,) or (spatial,) with axes
        if given.size != (spatial if axes is not None else rank):
            raise self.fail(node, f"its {'scales' if scales is not None else 'sizes'} {given.tolist()} do not have one "
                                  f"entry per axis of the rank-{rank} input")
        lead, tail = ([], list(given)) if axes is not None else (list(given[:2]), list(given[2:]))
        if scales is not None:
            if given.dtype.kind != "f" or any(float(s) != 1.0 for s in lead) or \
                    any(not (0 < float(s) < math.inf) for s in tail):
                raise self.fail(node, f"its scales {given.tolist()} are not supported (1 for the batch and channel "
                                      "axes, positive and finite for the spatial ones)")
            return None, tuple(decimal(s) for s in tail), tuple(tail)   # 1.7f -> 1.7, the scale_factor written
        shape = self.shapes.get(x) or [None] * rank
        for i, entry in enumerate(lead):
            keeps = (entry.value == x and entry.index == i) if isinstance(entry, Dim) else (
                shape[i] is not None and int(entry) == shape[i])
            if not keeps:
                raise self.fail(node, f"its sizes change the batch or channel axis ({i}); only the spatial axes "
                                      "are resized")
        if any(isinstance(s, Dim) or int(s) < 1 for s in tail):
            raise self.fail(node, "its spatial sizes must be positive constants")
        return tuple(int(s) for s in tail), None, None

    # -- DepthToSpace, SpaceToDepth and their Reshape chains ---------------------------------------------------
    def _blocksize(self, node):
        attrs = self.attrs(node, {"blocksize", "mode"} if node.op_type == "DepthToSpace" else {"blocksize"})
        if not isinstance(attrs.get("blocksize"), int) or attrs["blocksize"] < 1:
            raise self.fail(node, f"attribute 'blocksize' = {attrs.get('blocksize')!r} is not a positive integer")
        if len(self.shapes.get(node.input[0]) or [4]) != 4:
            raise self.fail(node, "only 4-D (N, C, H, W) input is supported")
        return attrs["blocksize"], attrs.get("mode", "DCR")

    def op_DepthToSpace(self, node):
        blocksize, mode = self._blocksize(node)
        self.require(node, mode in ("CRD", "DCR"), "mode", mode, "CRD or DCR")
        layer = PixelShuffle(blocksize) if mode == "CRD" else DepthToSpace(blocksize)
        self.add(node, layer, [node.input[0]])

    def op_SpaceToDepth(self, node):
        self.add(node, SpaceToDepth(self._blocksize(node)[0]), [node.input[0]])

    def _start_shuffle(self, node):
        """Reshape (N, C, H, W) -> 6-D -> Transpose -> Reshape: pixel (un)shuffle; remember it (True) or not."""
        x = node.input[0]
        transpose = self._only_consumer(node.output[0])
        if x not in self.values or len(node.input) < 2 or node.input[1] not in self.consts or transpose is None \
                or transpose.op_type != "Transpose":
            return False
        perm = next((tuple(self.onnx.helper.get_attribute_value(a)) for a in transpose.attribute
                     if a.name == "perm"), None)
        final = self._only_consumer(transpose.output[0])
        shape, target = self.shapes.get(x), self.consts[node.input[1]].reshape(-1)
        if perm not in _SHUFFLE_PERMS or final is None or final.op_type != "Reshape" or not shape or \
                len(shape) != 4 or None in shape[1:] or len(target) != 6 or \
                any(isinstance(t, Dim) for t in target[1:]):
            return False
        cls, (c, h, w), t = _SHUFFLE_PERMS[perm], shape[1:], [int(v) for v in target[1:]]
        if cls is PixelUnshuffle:
            r = t[2]
            expected = [c, h // r, r, w // r, r] if r >= 1 and h % r == 0 and w % r == 0 else None
        else:
            r = t[1]
            expected = [c // (r * r), r, r, h, w] if r >= 1 and c % (r * r) == 0 else None
        first = target[0]
        batch = (first.value == x and first.index == 0) if isinstance(first, Dim) else int(first) in (0, -1) or (
            shape[0] is not None and int(first) == shape[0])
        if t != expected or not batch:
            return False
        self._chain[node.output[0]] = None
        self._chain[transpose.output[0]] = (x, cls(r), c, h, w)
        return True

    def _finish_shuffle(self, node, x, layer, c, h, w):
        r = layer.downscale_factor if isinstance(layer, PixelUnshuffle) else layer.upscale_factor
        want = [c * r * r, h // r, w // r] if isinstance(layer, PixelUnshuffle) else [c // (r * r), h * r, w * r]
        target = self.consts.get(node.input[1]) if len(node.input) > 1 else None
        target = None if target is None else target.reshape(-1)
        if target is None or len(target) != 4 or any(isinstance(t, Dim) for t in target[1:]) or \
                [int(t) for t in target[1:]] != want:
            raise self.fail(node, f"the Reshape after a pixel-shuffle Transpose must give (N, {want[0]}, {want[1]}, "
                                  f"{want[2]}); minigrad has no general reshape layer")
        self.add(node, layer, [x])
