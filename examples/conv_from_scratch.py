"""Conv2d from scratch: forward as unfold + matmul, and its three gradients, every shape printed.

The question this example answers: a user writes Conv2d's forward as

    out = kernel.reshape(1, -1) @ unfold(img)          # (1, 9) @ (1, 9, 784) -> (1, 1, 784)

for a (1, 1, 28, 28) image and a (1, 1, 3, 3) kernel with padding 1. The input gradient
``kernel.reshape(1, -1).T @ grad_output`` comes out right, (1, 9, 784), folded back to the
image. The weight gradient written as ``img_unfolded.T @ output`` comes out as (784, 9, 784):
``.T`` reverses *all three* axes of a batched array, and the gradient needs ``grad_output``
(dL/d output), not ``output``. The answer is
``grad_output @ img_unfolded.transpose(0, 2, 1)`` -> (1, 1, 9), summed over the batch and
reshaped to the kernel's shape.

Part 1 walks through exactly that; part 2 does a batch with several channels, groups,
stride, dilation and a non-square kernel. Every hand-written result is checked against
``mg.functional.conv2d / conv2d_input / conv2d_weight``, ``mg.nn.Conv2d``'s backward,
finite differences (``mg.gradcheck``) and PyTorch when it is installed. The script exits
with status 1 if any check fails. The derivation is in docs/conv_backward.md.

Run:  python examples/conv_from_scratch.py
"""
from __future__ import annotations

import sys

import numpy as np

import minigrad as mg
from minigrad.functional import conv2d, conv2d_input, conv2d_weight, fold, unfold

FAILURES: list[str] = []


def show(name: str, array) -> None:
    """Print an array's name and shape, aligned."""
    print(f"  {name:<50} {str(tuple(array.shape)):>16}")


def check(what: str, actual, expected, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    """Compare two arrays (float64, so agreement is to ~1e-10); record a failure instead of stopping."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        FAILURES.append(what)
        print(f"  FAIL  {what}: shape {actual.shape} != {expected.shape}")
        return
    error = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    ok = np.allclose(actual, expected, rtol=rtol, atol=atol)
    if not ok:
        FAILURES.append(what)
    print(f"  {'ok  ' if ok else 'FAIL'}  {what:<52} max |diff| = {error:.2e}")


def load_torch():
    """PyTorch if installed (the reference implementation), else None with a message."""
    try:
        import torch
    except ImportError:
        print("  PyTorch is not installed: skipping the PyTorch comparison "
              "(pip install torch, or pip install -e \".[test]\")")
        return None
    return torch


# ======================================================================================
# Part 1: the seed question. One image, one channel, one 3x3 kernel, padding 1.
# ======================================================================================

def part1(torch) -> None:
    print("=" * 78)
    print("Part 1: a (1, 1, 28, 28) image, a (1, 1, 3, 3) kernel, padding 1")
    print("=" * 78)
    rng = np.random.default_rng(0)
    img = rng.standard_normal((1, 1, 28, 28))        # (N, C, H, W); float64 for exact checks
    kernel = rng.standard_normal((1, 1, 3, 3))       # (O, C, kh, kw)
    bias = rng.standard_normal(1)                    # (O,)

    print("\nForward: out = kernel.reshape(1, -1) @ unfold(img) + bias")
    img_unfolded = unfold(img, kernel_size=3, padding=1)   # every 3x3 window is a column
    show("img", img)
    show("kernel", kernel)
    show("img_unfolded = unfold(img, 3, padding=1)", img_unfolded)   # (1, 1*3*3, 28*28)
    w_row = kernel.reshape(1, -1)                    # (1, 1, 3, 3) -> (1, 9)
    show("kernel.reshape(1, -1)", w_row)
    out = w_row @ img_unfolded + bias.reshape(1, -1, 1)   # (1, 9) @ (1, 9, 784) -> (1, 1, 784)
    show("out = kernel.reshape(1,-1) @ img_unfolded", out)
    out_image = out.reshape(1, 1, 28, 28)            # (1, 1, 784) -> (1, 1, 28, 28)
    show("out.reshape(1, 1, 28, 28)", out_image)
    check("forward == mg.functional.conv2d", out_image, conv2d(img, kernel, bias, padding=1))

    # The upstream gradient dL/d(out): whatever the loss is, backward receives an array
    # shaped like the output. Here a random one, i.e. L = sum(out * grad_output).
    grad_output = rng.standard_normal(out.shape)     # (1, 1, 784)
    grad_output_image = grad_output.reshape(1, 1, 28, 28)   # (1, 1, 784) -> (1, 1, 28, 28)
    print("\nBackward receives grad_output = dL/d(out), shaped like out:")
    show("grad_output", grad_output)

    print("\nInput gradient: columns first, then fold them back onto the image")
    grad_cols = w_row.T @ grad_output                # (9, 1) @ (1, 1, 784) -> (1, 9, 784)
    show("grad_cols = kernel.reshape(1,-1).T @ grad_output", grad_cols)
    grad_img = fold(grad_cols, output_size=(28, 28), kernel_size=3, padding=1)
    show("grad_img = fold(grad_cols)", grad_img)     # (1, 9, 784) -> (1, 1, 28, 28)
    print("  (w_row is 2-D, so its .T is the ordinary matrix transpose: (1, 9) -> (9, 1).)")
    check("grad_img == mg.functional.conv2d_input",
          grad_img, conv2d_input(img.shape, kernel, grad_output_image, padding=1))

    print("\nWeight gradient, the tempting way: img_unfolded.T @ output")
    show("img_unfolded.T  (reverses ALL axes)", img_unfolded.T)   # (1, 9, 784) -> (784, 9, 1)
    wrong = img_unfolded.T @ out                     # (784, 9, 1) @ (1, 1, 784): batch 784 x 1 broadcasts
    show("img_unfolded.T @ output", wrong)           # -> (784, 9, 784)
    print("  Two mistakes at once:\n"
          "  * .T on a 3-D array reverses all three axes, (1, 9, 784) -> (784, 9, 1), so matmul\n"
          "    treats 784 as the batch axis and broadcasts it against the batch of 1: (784, 9, 784).\n"
          "    Swap only the last two axes: img_unfolded.transpose(0, 2, 1) (NumPy) or\n"
          "    .transpose(-2, -1) (PyTorch), i.e. .swapaxes(-2, -1) in both.\n"
          "  * The chain rule needs dL/d(out) = grad_output, not the forward's output. With the\n"
          "    axes fixed, output @ cols^T has the right shape but the wrong values (it equals the\n"
          "    gradient only for the one loss L = 0.5 * sum(out**2), where grad_output == out).")
    del wrong

    print("\nWeight gradient, correct: grad_output @ img_unfolded.transpose(0, 2, 1)")
    cols_t = img_unfolded.transpose(0, 2, 1)         # (1, 9, 784) -> (1, 784, 9): swap the last two only
    show("img_unfolded.transpose(0, 2, 1)", cols_t)
    grad_w_batched = grad_output @ cols_t            # (1, 1, 784) @ (1, 784, 9) -> (1, 1, 9)
    show("grad_output @ img_unfolded.transpose(0,2,1)", grad_w_batched)
    grad_w = grad_w_batched.sum(axis=0)              # sum over the batch: (1, 1, 9) -> (1, 9)
    show(".sum(axis=0)  (over the batch)", grad_w)
    grad_kernel = grad_w.reshape(kernel.shape)       # (1, 9) -> (1, 1, 3, 3)
    show(".reshape(kernel.shape)", grad_kernel)
    check("grad_kernel == mg.functional.conv2d_weight",
          grad_kernel, conv2d_weight(img, kernel.shape, grad_output_image, padding=1))
    with_output = (out @ cols_t).sum(axis=0).reshape(kernel.shape)   # the 'output' mistake, axes fixed
    differs = not np.allclose(with_output, grad_kernel)
    print(f"  {'ok  ' if differs else 'FAIL'}  using output instead of grad_output gives a different "
          "(wrong) gradient")
    if not differs:
        FAILURES.append("output vs grad_output")

    print("\nBias gradient: every output pixel adds the bias once")
    grad_bias = grad_output.sum(axis=(0, 2))         # (1, 1, 784) -> (1,)
    show("grad_bias = grad_output.sum(axis=(0, 2))", grad_bias)

    print("\nThe same through the layer, mg.nn.Conv2d(1, 1, 3, padding=1):")
    layer = mg.nn.Conv2d(1, 1, 3, padding=1, dtype="float64")
    layer.load_state_dict({"weight": kernel, "bias": bias})
    check("Conv2d forward", layer(img), out_image)
    check("Conv2d backward: input gradient", layer.backward(grad_output_image), grad_img)
    check("Conv2d backward: weight.grad", layer.weight.grad, grad_kernel)
    check("Conv2d backward: bias.grad", layer.bias.grad, grad_bias)

    if torch is not None:
        print("\nPyTorch (autograd) on the same numbers:")
        t_img = torch.tensor(img, requires_grad=True)
        t_kernel = torch.tensor(kernel, requires_grad=True)
        t_bias = torch.tensor(bias, requires_grad=True)
        t_out = torch.nn.functional.conv2d(t_img, t_kernel, t_bias, padding=1)
        t_out.backward(torch.tensor(grad_output_image))
        check("forward == torch conv2d", out_image, t_out.detach().numpy())
        check("grad_img == torch img.grad", grad_img, t_img.grad.numpy())
        check("grad_kernel == torch kernel.grad", grad_kernel, t_kernel.grad.numpy())
        check("grad_bias == torch bias.grad", grad_bias, t_bias.grad.numpy())
        # The seed question's exact expression, in PyTorch's spelling.
        t_cols = torch.nn.functional.unfold(torch.tensor(img), 3, padding=1)
        t_grad_w = (torch.tensor(grad_output) @ t_cols.transpose(-2, -1)).sum(0).view(1, 1, 3, 3)
        check("torch: grad_output @ unfold(img).transpose(-2, -1)", grad_kernel, t_grad_w.numpy())


# ======================================================================================
# Part 2: the general case. Batch N, C channels, groups G, stride, dilation, padding.
# ======================================================================================

def conv_by_hand(x, weight, bias, stride, padding, dilation, groups):
    """Forward by hand. x: (N, C, H, W), weight: (O, C/G, kh, kw), bias: (O,) -> (N, O, OH, OW)."""
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    g, k = groups, cg * kh * kw
    cols = unfold(x, (kh, kw), dilation, padding, stride)    # (N, C*kh*kw, L)
    length = cols.shape[-1]
    cols = cols.reshape(n, g, k, length)                     # -> (N, G, K, L): channel blocks are groups
    w_g = weight.reshape(g, o // g, k)                       # (O, Cg, kh, kw) -> (G, Og, K)
    y = w_g @ cols                                           # (G, Og, K) @ (N, G, K, L) -> (N, G, Og, L)
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = y.reshape(n, o, oh, ow) + bias.reshape(1, o, 1, 1)   # (N, G, Og, L) -> (N, O, OH, OW)
    return y, cols


def conv_backward_by_hand(grad_y, x, weight, stride, padding, dilation, groups, verbose=False):
    """Gradients by hand: grad_y (N, O, OH, OW) -> (dx (N,C,H,W), dW (O,C/G,kh,kw), db (O,))."""
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    g, k = groups, cg * kh * kw
    _, cols = conv_by_hand(x, weight, np.zeros(o), stride, padding, dilation, groups)   # (N, G, K, L)
    length = cols.shape[-1]
    dy = grad_y.reshape(n, g, o // g, length)                # (N, O, OH, OW) -> (N, G, Og, L)
    w_g = weight.reshape(g, o // g, k)                       # (O, Cg, kh, kw) -> (G, Og, K)
    # weight: dW[g] = sum_n dy[n, g] @ cols[n, g]^T ; swap the LAST TWO axes only
    dw_batched = dy @ cols.swapaxes(-2, -1)                  # (N, G, Og, L) @ (N, G, L, K) -> (N, G, Og, K)
    dw = dw_batched.sum(axis=0).reshape(weight.shape)        # -> (G, Og, K) -> (O, Cg, kh, kw)
    # input: dcols = W^T @ dy per group, then fold (the adjoint of unfold)
    dcols = w_g.swapaxes(-2, -1) @ dy                        # (G, K, Og) @ (N, G, Og, L) -> (N, G, K, L)
    dcols_flat = dcols.reshape(n, c * kh * kw, length)       # -> (N, C*kh*kw, L)
    dx = fold(dcols_flat, (h, w), (kh, kw), dilation, padding, stride)   # -> (N, C, H, W)
    db = grad_y.sum(axis=(0, 2, 3))                          # (N, O, OH, OW) -> (O,)
    if verbose:
        show("cols = unfold(x) -> reshape (N, G, K, L)", cols)
        show("dy = grad_y.reshape (N, G, Og, L)", dy)
        show("W.reshape (G, Og, K)", w_g)
        show("dy @ cols.swapaxes(-2, -1)", dw_batched)
        show("  .sum(axis=0).reshape(weight.shape) = dW", dw)
        show("W.swapaxes(-2, -1) @ dy = dcols", dcols)
        show("  .reshape (N, C*kh*kw, L)", dcols_flat)
        show("  fold(...) = dx", dx)
        show("grad_y.sum(axis=(0, 2, 3)) = db", db)
    return dx, dw, db


def part2(torch) -> None:
    print()
    print("=" * 78)
    print("Part 2: N=4, C=6 -> O=4, groups=2, kernel (3, 2), stride (2, 1), dilation (1, 2), padding (1, 2)")
    print("=" * 78)
    rng = np.random.default_rng(1)
    n, c, o, groups = 4, 6, 4, 2
    kernel_size, stride, dilation, padding = (3, 2), (2, 1), (1, 2), (1, 2)
    x = rng.standard_normal((n, c, 11, 9))
    weight = rng.standard_normal((o, c // groups) + kernel_size)
    bias = rng.standard_normal(o)
    show("x", x)
    show("weight (O, C/groups, kh, kw)", weight)
    print("  G = 2 groups, Cg = C/G = 3, Og = O/G = 2, K = Cg*kh*kw = 18")

    y, _ = conv_by_hand(x, weight, bias, stride, padding, dilation, groups)
    show("y = conv_by_hand(x)", y)
    conv_args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check("forward == mg.functional.conv2d", y, conv2d(x, weight, bias, **conv_args))

    grad_y = rng.standard_normal(y.shape)
    print("\nBackward, with grad_y = dL/dy of shape", tuple(grad_y.shape))
    dx, dw, db = conv_backward_by_hand(grad_y, x, weight, stride, padding, dilation, groups, verbose=True)
    check("dx == mg.functional.conv2d_input", dx, conv2d_input(x.shape, weight, grad_y, **conv_args))
    check("dW == mg.functional.conv2d_weight", dw, conv2d_weight(x, weight.shape, grad_y, **conv_args))

    layer = mg.nn.Conv2d(c, o, kernel_size, dtype="float64", **conv_args)
    layer.load_state_dict({"weight": weight, "bias": bias})
    check("Conv2d forward", layer(x), y)
    check("Conv2d backward: input gradient", layer.backward(grad_y), dx)
    check("Conv2d backward: weight.grad", layer.weight.grad, dw)
    check("Conv2d backward: bias.grad", layer.bias.grad, db)

    print("\nFinite differences (mg.gradcheck, float64) on a smaller batch:")
    small_x, small_w, small_b = x[:2, :, :7, :6].copy(), weight.copy(), bias.copy()

    def forward(xx, ww, bb):
        return conv_by_hand(xx, ww, bb, stride, padding, dilation, groups)[0]

    def backward(grad, xx, ww, bb):
        return conv_backward_by_hand(grad, xx, ww, stride, padding, dilation, groups)

    for what, run in (("the hand-written backward", lambda: mg.gradcheck((forward, backward),
                                                                          (small_x, small_w, small_b))),
                      ("mg.nn.Conv2d", lambda: mg.gradcheck(layer, small_x))):
        try:
            run()
            print(f"  ok    gradcheck of {what}")
        except mg.GradcheckError as exc:
            FAILURES.append(f"gradcheck {what}")
            print(f"  FAIL  gradcheck of {what}: {exc}")

    if torch is not None:
        print("\nPyTorch (autograd) on the same numbers:")
        t_x = torch.tensor(x, requires_grad=True)
        t_w = torch.tensor(weight, requires_grad=True)
        t_b = torch.tensor(bias, requires_grad=True)
        t_y = torch.nn.functional.conv2d(t_x, t_w, t_b, **conv_args)
        t_y.backward(torch.tensor(grad_y))
        check("forward == torch conv2d", y, t_y.detach().numpy())
        check("dx == torch x.grad", dx, t_x.grad.numpy())
        check("dW == torch weight.grad", dw, t_w.grad.numpy())
        check("db == torch bias.grad", db, t_b.grad.numpy())


def main() -> int:
    torch = load_torch()
    part1(torch)
    part2(torch)
    print()
    if FAILURES:
        print(f"{len(FAILURES)} check(s) FAILED: {', '.join(FAILURES)}")
        return 1
    print("All checks passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
