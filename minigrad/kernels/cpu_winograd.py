"""3x3 stride-1 convolutions on the CPU by Winograd F(2x2, 3x3): 2.25x fewer multiplies than im2col.

Every 2x2 block of outputs ("tile") is computed from a 4x4 block of padded input (Lavin & Gray 2016):

    Y = A^T [ U  (.)  V ] A,    U = G W G^T (4x4 per (c, o)),   V = B^T d B (4x4 per tile and c)

where "(.)" is, for each of the 16 positions (xi, nu), a matrix product over channels:
M[xi,nu] (T, O) = V[xi,nu] (T, C) @ U[xi,nu] (C, O), T = tiles. That is 16 GEMMs with 16*T*C*O
multiply-adds instead of 9*4*T*C*O for im2col. The gradients reuse the same machinery:

    dx = the same Winograd convolution of pad(dy) with the flipped, transposed kernel
    dU[xi,nu] = sum_tiles V[xi,nu]^T @ dM[xi,nu],   dM = A dY A^T (per 2x2 tile of dy)
    dW = G^T dU G

The transforms are adds and subtracts over whole channels-last tile arrays (a handful of vector
passes per chunk); chunks of samples (or of tile rows) keep the buffers within a few MiB and run on
the thread pool like cpu_conv. Float32 stays within ~1e-6 relative of direct convolution (F(2x2, 3x3)
has only 0, +-1 and +-1/2 coefficients).
"""
from __future__ import annotations

import numpy as np

from .cpu_runtime import batch_chunks, row_block, run_chunks, work_buffer

# Winograd is opt-in (mg.set_conv_algorithm("winograd")): its transforms are passes over memory, so
# whether it beats im2col depends on the machine's memory bandwidth per core, not only on the shape
# (docs/benchmarks.md has the measurements). When chosen, it serves 3x3 stride-1 layers with at
# least MIN_CHANNELS input and output channels; below that the transforms cost more than they save.
MIN_CHANNELS = 128

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
_KRON = np.einsum("xi,yj->ijxy", _G, _G).reshape(9, 16)   # W (.., 3*3) @ _KRON = G W G^T (.., 4*4)


def applies(geom) -> bool:
    """3x3, stride 1, dilation 1, groups 1, pads <= 2 and at least MIN_CHANNELS channels in and out."""
    return (geom.kernel == (3, 3) and geom.stride == (1, 1) and geom.dilation == (1, 1) and geom.groups == 1
            and max(geom.pads) <= 2 and min(geom.in_channels, geom.out_channels) >= MIN_CHANNELS)


def transform_weight(weight, flip=False):
    """(O, C, 3, 3) -> (16, O, C): [xi, nu, o, c] = (G W[o, c] G^T)[xi, nu] (W[o, c] rotated 180 deg with flip).

    Used as (16, C, O) (a transposed view, no copy) for y, and as is for dx = conv(pad(dy), flipped W^T).
    """
    o, c = weight.shape[:2]
    kron = _KRON[::-1] if flip else _KRON                           # flip: W[o, c, 2-i, 2-j] <-> row 8-(3i+j)
    u = np.matmul(kron.T.astype(weight.dtype), weight.reshape(o * c, 9).T)   # (16, 9) @ (9, O*C) -> (16, O*C)
    return u.reshape(16, o, c)


def pad_split(x, top, left, hp, wp, name):
    """x (m, C, H, W) -> zero-padded channels-last (m, Hp, 2, Wp/2, C), even and odd columns apart.

    Column q of the padded image is [:, :, q % 2, q // 2]: tile column k of every tile is then one
    contiguous (TW, C) run, so the transforms below are long vector loops even for few channels.
    """
    m, c, h, w = x.shape
    buf = work_buffer(name, (m, hp, 2, wp // 2, c), x.dtype)
    buf[:, :top] = 0
    buf[:, top + h:] = 0
    for parity in range(2):
        j0 = (parity - left) % 2                                     # first input column landing on this parity
        lo, count = (left + j0) // 2, (w - j0 + 1) // 2
        rows = buf[:, top:top + h, parity]
        rows[:, :, :lo] = 0
        rows[:, :, lo + count:] = 0
        rows[:, :, lo:lo + count] = x[:, :, :, j0::2].transpose(0, 2, 3, 1)   # (m, C, H, w') -> (m, H, w', C)
    return buf


def _input_transform(xs, tr0, tr1, v):
    """V = B^T d B for the tiles of tile rows [tr0, tr1): xs (m, Hp, 2, Wp/2, C) -> v (4, 4, m, rows, TW, C)."""
    m, _, _, half, c = xs.shape
    rows, tw = v.shape[3], v.shape[4]
    r = [xs[:, 2 * tr0 + k:2 * tr1 + k - 1:2] for k in range(4)]     # tile row k of every tile: (m, rows, 2, Wp/2, C)
    t = work_buffer("wg_t", (4, m, rows, 2, half, c), xs.dtype)
    np.subtract(r[0], r[2], out=t[0])                                # B^T on the rows
    np.add(r[1], r[2], out=t[1])
    np.subtract(r[2], r[1], out=t[2])
    np.subtract(r[1], r[3], out=t[3])
    s = [t[:, :, :, k % 2, k // 2:k // 2 + tw] for k in range(4)]    # tile column k: (4, m, rows, TW, C)
    np.subtract(s[0], s[2], out=v[:, 0])                             # ... and B on the columns
    np.add(s[1], s[2], out=v[:, 1])
    np.subtract(s[2], s[1], out=v[:, 2])
    np.subtract(s[1], s[3], out=v[:, 3])


def _output_transform(prod, y):
    """Y = A^T M A: prod (4, 4, m, rows, TW, O) -> y (2, 2, m, rows, TW, O)."""
    s = work_buffer("wg_s", (2,) + prod.shape[1:], prod.dtype)
    np.add(prod[0], prod[1], out=s[0])
    s[0] += prod[2]
    np.subtract(prod[1], prod[2], out=s[1])
    s[1] -= prod[3]
    np.add(s[:, 0], s[:, 1], out=y[:, 0])
    y[:, 0] += s[:, 2]
    np.subtract(s[:, 1], s[:, 2], out=y[:, 1])
    y[:, 1] -= s[:, 3]


def _grad_output_transform(dys, tr0, tr1, dm):
    """dM = A dY A^T: dys (m, 2*TH, 2, TW, O) = dy split like pad_split, zero past the output -> dm (4, 4, m, rows, TW, O)."""
    m, _, _, tw, o = dys.shape
    rows = dm.shape[3]
    # tile row a of every tile, its two columns b first: (m, rows, 2, TW, O) -> (2, m, rows, TW, O)
    d = [dys[:, 2 * tr0 + a:2 * tr1:2].transpose(2, 0, 1, 3, 4) for a in range(2)]
    p = work_buffer("wg_p", (4, 2, m, rows, tw, o), dys.dtype)
    p[0] = d[0]                                                      # A on the rows
    np.add(d[0], d[1], out=p[1])
    np.subtract(d[0], d[1], out=p[2])
    np.negative(d[1], out=p[3])
    dm[:, 0] = p[:, 0]                                               # ... and A^T on the columns
    np.add(p[:, 0], p[:, 1], out=dm[:, 1])
    np.subtract(p[:, 0], p[:, 1], out=dm[:, 2])
    np.negative(p[:, 1], out=dm[:, 3])


def _tile_rows(th, m, tw, channels, itemsize):
    """Tile rows per block: the block's transformed tiles (16 per tile) fit the runtime's budget."""
    return row_block(th, 16 * m * tw * channels * itemsize)


def _conv_chunk(src, pads, u, out, bias4):
    """out (m, O, OH, OW) = conv3x3(pad(src), W) + bias; src (m, C, H, W); u: (16, C, O) transformed W."""
    m, c, h, w = src.shape
    o = u.shape[2]
    oh, ow = out.shape[2:]
    th, tw = -(-oh // 2), -(-ow // 2)
    top, left = pads[0], pads[2]
    # pad to exactly (2*TH + 2, 2*TW + 2): whole tiles, zeros past the real padding
    xs = pad_split(src, top, left, 2 * th + 2, 2 * tw + 2, "wg_x")
    step = _tile_rows(th, m, tw, max(c, o), src.itemsize)
    for tr0 in range(0, th, step):
        tr1 = min(th, tr0 + step)
        rows = tr1 - tr0
        v = work_buffer("wg_v", (4, 4, m, rows, tw, c), src.dtype)
        _input_transform(xs, tr0, tr1, v)
        prod = np.matmul(v.reshape(16, m * rows * tw, c), u,
                         out=work_buffer("wg_m", (16, m * rows * tw, o), src.dtype))
        y = work_buffer("wg_y", (2, 2, m, rows, tw, o), src.dtype)
        _output_transform(prod.reshape(4, 4, m, rows, tw, o), y)
        for a in range(2):
            n_a = min(rows, (oh - 1 - a) // 2 - tr0 + 1)             # tile rows whose row a is inside the output
            if n_a <= 0:
                continue
            for b in range(2):
                n_b = (ow - 1 - b) // 2 + 1
                r0 = 2 * tr0 + a
                dst = out[:, :, r0:r0 + 2 * n_a - 1:2, b:b + 2 * n_b - 1:2]
                res = y[a, b, :, :n_a, :n_b].transpose(0, 3, 1, 2)    # (m, rows, TW, O) -> (m, O, rows, TW)
                if bias4 is None:
                    dst[...] = res
                else:
                    np.add(res, bias4, out=dst)


def conv_forward(x, weight, bias, geom, saved=None):
    """x: (N, C, H, W), weight: (O, C, 3, 3), bias: (O,) | None -> (N, O, OH, OW)."""
    u = transform_weight(weight).transpose(0, 2, 1)                 # (16, O, C) -> (16, C, O)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    bias4 = None if bias is None else bias.reshape(1, -1, 1, 1)     # (O,) -> (1, O, 1, 1)

    def per_chunk(c0, c1):
        _conv_chunk(x[c0:c1], geom.pads, u, out[c0:c1], bias4)

    run_chunks(chunks(geom, x.dtype), per_chunk)
    return out


def chunks(geom, dtype):
    """[(n0, n1), ...]: the batch cut so that a chunk's transformed tiles fit the runtime's budget."""
    oh, ow = geom.out_size
    tiles = (-(-oh // 2)) * (-(-ow // 2))
    itemsize = np.dtype(dtype).itemsize
    return batch_chunks(geom.batch, 16 * tiles * max(geom.in_channels, geom.out_channels) * itemsize)


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True, saved=None):
    """(dx, dW, db) of the Winograd convolution; each is None when not needed."""
    dtype = grad_out.dtype
    c, o = geom.in_channels, geom.out_channels
    oh, ow = geom.out_size
    h, w = geom.in_size
    th, tw = -(-oh // 2), -(-ow // 2)
    top, bottom, left, right = geom.pads
    dx = np.empty(geom.in_shape, dtype=dtype) if need_input else None
    if need_input:   # dx = conv(pad(dy, 2 - pads), W[o, c, ::-1, ::-1] as a (C, O, 3, 3) kernel)
        u_t = transform_weight(weight, flip=True)                    # (16, O, C): maps O channels of dy to C
        dy_pads = (2 - top, 2 - bottom, 2 - left, 2 - right)

    def per_chunk(c0, c1):
        m = c1 - c0
        dy = grad_out[c0:c1]
        db = dy.reshape(m, o, oh * ow).sum(axis=2).sum(axis=0) if need_bias else None
        du = None
        if need_weight:
            du = np.zeros((16, o, c), dtype=dtype)                     # this chunk's own
            xs = pad_split(x[c0:c1], top, left, 2 * th + 2, 2 * tw + 2, "wg_x")
            dys = pad_split(dy, 0, 0, 2 * th, 2 * tw, "wg_dy")
            rstep = _tile_rows(th, m, tw, max(c, o), dtype.itemsize)
            tmp = work_buffer("wg_du", (16, o, c), dtype)
            for tr0 in range(0, th, rstep):
                tr1 = min(th, tr0 + rstep)
                t = m * (tr1 - tr0) * tw
                v = work_buffer("wg_v", (4, 4, m, tr1 - tr0, tw, c), dtype)
                _input_transform(xs, tr0, tr1, v)
                dm = work_buffer("wg_m", (4, 4, m, tr1 - tr0, tw, o), dtype)
                _grad_output_transform(dys, tr0, tr1, dm)
                # dU[xi, nu] (O, C) += dM^T (O, T) @ V (T, C)
                du += np.matmul(dm.reshape(16, t, o).transpose(0, 2, 1), v.reshape(16, t, c), out=tmp)
        if need_input:
            _conv_chunk(dy, dy_pads, u_t, dx[c0:c1], None)
        return du, db

    du, grad_b = run_chunks(chunks(geom, dtype), per_chunk)
    grad_w = None
    if need_weight:
        # dW[o, c] = G^T dU[:, :, o, c] G: (16, O*C)^T (O*C, 16) @ (16, 3*3) -> (O, C, 3, 3)
        grad_w = np.matmul(du.reshape(16, o * c).T, _KRON.T.astype(dtype)).reshape(o, c, 3, 3)
    return dx, grad_w, grad_b
