"""ONNX export and import of the resampling, padding and channel-dropout layers (nn/resample.py, nn/padding.py,
nn/dropout_more.py).

Export (``EXPORTERS``, merged into export.py's table):

    Upsample nearest        Resize mode=nearest, coordinate_transformation_mode=asymmetric, nearest_mode=floor
    Upsample nearest-exact  Resize mode=nearest, half_pixel, nearest_mode=round_prefer_ceil
    Upsample (bi)linear     Resize mode=linear, half_pixel (align_corners=False) or align_corners
                            (a scale_factor: the float32 scales whose output sizes and nearest indices in ONNX
                            equal PyTorch's, see _onnx_scale; a size: Shape -> Gather [N, C] -> Concat sizes;
                            one Resize per axis where the axes need different forms)
    PixelShuffle            DepthToSpace mode=CRD (PyTorch's channel order)
    PixelUnshuffle          Reshape -> Transpose -> Reshape (ONNX's SpaceToDepth orders the channels differently)
    ZeroPad2d ... Circular  Pad mode constant (with the value) / reflect / edge / wrap (opset >= 19)
    Dropout2d, AlphaDropout Identity

Import: ``ResampleOps`` (resample_import.py), the mixin of load.py's importer, re-exported here.
"""
from __future__ import annotations

import numpy

from ..functional import resample as R
from ..nn import (AlphaDropout, CircularPad2d, ConstantPad2d, Dropout2d, PixelShuffle, PixelUnshuffle,
                  ReflectionPad2d, ReplicationPad2d, Upsample, UpsamplingBilinear2d, UpsamplingNearest2d, ZeroPad2d)
from ..nn.resample import DepthToSpace, SpaceToDepth
from .common import OnnxError
from .resample_import import ResampleOps

__all__ = ["EXPORTERS", "ResampleOps"]

_RESIZE = {"nearest": dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
           "nearest-exact": dict(mode="nearest", coordinate_transformation_mode="half_pixel",
                                 nearest_mode="round_prefer_ceil")}
_PAD_ONNX = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _tag(layer) -> str:
    return layer.name or type(layer).__name__


def _check_rank(layer, x, ranks, what):
    if x.ndim not in ranks:
        raise OnnxError(f"mg.onnx.export: {layer.label} gets an input of shape {tuple(x.shape)}; {what}")


# -- export -----------------------------------------------------------------------------------------------------
def _onnx_sizes(n, scale):
    """The output length ONNX gives for a float32 scale: floor(n * scale) as ONNX Runtime (float32) and as onnx's
    shape inference (double) compute it; export needs both to agree with PyTorch's."""
    return int(numpy.float32(n) * numpy.float32(scale)), int(n * float(numpy.float32(scale)))


def _onnx_index(n, o, scale, mode):
    """ONNX Runtime's nearest source index (float32): asymmetric + floor, or half_pixel + round_prefer_ceil."""
    f32 = numpy.float32
    dst, scale = numpy.arange(o, dtype=f32), f32(scale)
    if mode == "nearest":
        src = numpy.floor(dst / scale)
    else:
        src = numpy.floor((dst + f32(0.5)) / scale - f32(0.5) + f32(0.5))     # std::round: half away from 0
    return numpy.clip(src, 0, n - 1).astype(numpy.int64)


def _onnx_scale(n, o, s, axis, mode):
    """A float32 scale that makes ONNX's Resize give this axis's PyTorch output length o (floor(n * s) in double)
    and, for the nearest modes, PyTorch's very source indices; None when there is none. Candidates: s itself,
    s nudged by ulps until both floors give o, and o / n (what PyTorch steps by where it copies or halves)."""
    f32 = numpy.float32
    candidates, scale = [f32(s)], f32(s)
    for _ in range(64):
        sizes = _onnx_sizes(n, scale)
        if sizes == (o, o):
            candidates.append(scale)
            break
        scale = numpy.nextafter(scale, f32(numpy.inf if min(sizes) < o else -numpy.inf))
    candidates.append(f32(o) / f32(n))
    for scale in candidates:
        if _onnx_sizes(n, scale) == (o, o) and (not mode.startswith("nearest") or numpy.array_equal(
                _onnx_index(n, o, scale, mode), axis.index)):
            return float(scale)
    return None


def export_upsample(emitter, layer, names, arrays, y):
    x = arrays[0]
    _check_rank(layer, x, (3, 4), "Resize is written for (N, C, W) and (N, C, H, W) inputs")
    label, options = _tag(layer), layer._resolved(layer.label)
    _, _, mode, align_corners, _ = options
    in_size, out_size, scales = R._geometry(x.shape, options, layer.label)
    plan = R._plan(in_size, out_size, scales, mode, align_corners, x.dtype)
    dims = x.ndim - 2
    in_size, out_size, scales, plan = in_size[2 - dims:], out_size[2 - dims:], scales[2 - dims:], plan[2 - dims:]
    attrs = _RESIZE.get(mode) or dict(mode="linear", coordinate_transformation_mode="align_corners" if align_corners
                                      else "half_pixel")
    steps = []                      # per axis: a float32 scale (the step, as PyTorch) or None (the output size)
    for n, o, s, axis in zip(in_size, out_size, scales, plan):
        step = None if s is None else _onnx_scale(n, o, s, axis, mode)
        if step is None and mode.startswith("nearest") and not numpy.array_equal(
                _onnx_index(n, o, numpy.float32(o) / numpy.float32(n), mode), axis.index):
            raise OnnxError(f"mg.onnx.export: {layer.label} samples its input of spatial size {tuple(in_size)} with "
                            f"steps ONNX's Resize cannot reproduce in float32 (scale_factor {layer.scale_factor}, "
                            f"size {layer.size}); another scale_factor or size exports")
        steps.append(step)
    if None not in steps or not any(steps):            # one Resize: all scales, or all sizes
        return _resize_node(emitter, names[0], label, in_size, out_size, steps, attrs)
    name, current = names[0], list(in_size)             # else one Resize per axis (the resize is separable)
    for i, step in enumerate(steps):
        target = current[:i] + [out_size[i]] + current[i + 1:]
        axis_steps = [1.0 if j != i else step for j in range(len(steps))] if step is not None else [None] * len(steps)
        name = _resize_node(emitter, name, label if i == len(steps) - 1 else f"{label}.axis{i}", current, target,
                            axis_steps, attrs)
        current = target
    return name


def _resize_node(emitter, x, label, in_size, out_size, steps, attrs):
    """One Resize of x from in_size to out_size: by the float32 scales ``steps``, or (None) to the sizes."""
    if None not in steps:
        given = emitter.const(f"{label}.scales", [1.0, 1.0] + list(steps), numpy.float32)
        return emitter.node("Resize", [x, "", given], label, **attrs)
    shape = emitter.node("Shape", [x], f"{label}.shape")                                          # (rank,)
    batch = emitter.node("Gather", [shape, emitter.const(f"{label}.nc_axes", [0, 1], numpy.int64)],
                         f"{label}.batch_channels", axis=0)                                         # (2,): N, C
    spatial = emitter.const(f"{label}.spatial_size", list(out_size), numpy.int64)
    sizes = emitter.node("Concat", [batch, spatial], f"{label}.sizes", axis=0)                    # (rank,)
    return emitter.node("Resize", [x, "", "", sizes], label, **attrs)


def export_pixel_shuffle(emitter, layer, names, arrays, y):
    _check_rank(layer, arrays[0], (4,), "ONNX's DepthToSpace needs the batched (N, C, H, W) form")
    return emitter.node("DepthToSpace", names, _tag(layer), blocksize=layer.upscale_factor, mode="CRD")


def export_pixel_unshuffle(emitter, layer, names, arrays, y):
    x = arrays[0]
    _check_rank(layer, x, (4,), "it is written for the batched (N, C, H, W) form")
    label, r = _tag(layer), layer.downscale_factor
    c, h, w = x.shape[1], x.shape[2] // r, x.shape[3] // r
    blocks = emitter.const(f"{label}.blocks_shape", [0, c, h, r, w, r], numpy.int64)
    out = emitter.node("Reshape", [names[0], blocks], f"{label}.blocks")           # -> (N, C, H, r, W, r)
    out = emitter.node("Transpose", [out], f"{label}.transpose", perm=[0, 1, 3, 5, 2, 4])   # -> (N, C, r, r, H, W)
    target = emitter.const(f"{label}.shape", [0, c * r * r, h, w], numpy.int64)
    return emitter.node("Reshape", [out, target], label)                          # -> (N, C r r, H, W)


def export_pad(emitter, layer, names, arrays, y):
    x, mode = arrays[0], layer._mode
    if mode == "circular" and emitter.opset < 19:
        raise OnnxError(f"mg.onnx.export: {layer.label} needs ONNX's Pad mode 'wrap', which ONNX has from opset 19; "
                        f"got opset={emitter.opset}")
    left, right, top, bottom = layer.padding
    lead = [0] * (x.ndim - 2)
    label = _tag(layer)
    pads = emitter.const(f"{label}.pads", lead + [top, left] + lead + [bottom, right], numpy.int64)
    inputs = [names[0], pads]
    if mode == "zeros" and layer._value() != 0.0:
        inputs.append(emitter.const(f"{label}.value", layer._value(), x.dtype))
    return emitter.node("Pad", inputs, label, mode=_PAD_ONNX[mode])


def export_identity(emitter, layer, names, arrays, y):
    return emitter.node("Identity", names, _tag(layer))


def export_space_to_depth(emitter, layer, names, arrays, y):
    _check_rank(layer, arrays[0], (4,), "ONNX's SpaceToDepth needs the batched (N, C, H, W) form")
    if isinstance(layer, DepthToSpace):
        return emitter.node("DepthToSpace", names, _tag(layer), blocksize=layer.blocksize, mode="DCR")
    return emitter.node("SpaceToDepth", names, _tag(layer), blocksize=layer.blocksize)


EXPORTERS = {Upsample: export_upsample, UpsamplingNearest2d: export_upsample, UpsamplingBilinear2d: export_upsample,
             PixelShuffle: export_pixel_shuffle, PixelUnshuffle: export_pixel_unshuffle,
             ZeroPad2d: export_pad, ConstantPad2d: export_pad, ReflectionPad2d: export_pad,
             ReplicationPad2d: export_pad, CircularPad2d: export_pad, Dropout2d: export_identity,
             AlphaDropout: export_identity, SpaceToDepth: export_space_to_depth, DepthToSpace: export_space_to_depth}
