"""Train mg.models.unet as a denoising autoencoder on MNIST and save a picture of noisy / denoised / clean digits.

    python examples/unet_denoise.py                          # CPU, 3000 digits x 3 epochs: about a minute
    python examples/unet_denoise.py --limit-train 60000 --epochs 5 --base 16   # the whole training set
    python examples/unet_denoise.py --upsample upsample --mode bilinear        # Upsample + conv decoder
    python examples/unet_denoise.py --backend cupy           # the same script on the GPU

The input is a digit (pixels in [0, 1]) plus Gaussian noise of standard deviation --noise, clipped to [0, 1];
the target is the clean digit; the loss is the mean squared error. The picture (--out, default
unet_denoise.png) has three rows: noisy inputs, the network's outputs, the clean digits, for test images the
network never saw. The last line printed compares the test MSE of the noisy inputs and of the outputs.
Needs the MNIST copy of the data extra and matplotlib: pip install -e ".[data,plot]"
"""
import argparse
import sys
import time

import numpy as np

import minigrad as mg


def noisy_copy(clean: np.ndarray, std: float, rng) -> np.ndarray:
    """clean (N, 1, 28, 28) in [0, 1] -> clip(clean + N(0, std^2), 0, 1), float32."""
    return np.clip(clean + std * rng.standard_normal(clean.shape, dtype=np.float32), 0.0, 1.0)


def denoise(model, noisy: np.ndarray, backend: str, batch: int = 500) -> np.ndarray:
    """The model's outputs for (N, 1, 28, 28) inputs, in eval mode (BatchNorm's running statistics), on the host."""
    model.eval()
    with mg.no_grad():
        outs = [mg.backend.to_backend(model(mg.backend.to_backend(noisy[i:i + batch], backend)), "numpy")
                for i in range(0, len(noisy), batch)]
    model.train()
    return np.concatenate(outs)


def save_grid(path: str, rows, titles, columns: int) -> None:
    """One row of `columns` 28x28 digits per array in `rows`, each row titled, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(rows), columns, figsize=(columns * 0.9, len(rows) * 1.05))
    for r, (images, title) in enumerate(zip(rows, titles)):
        for c in range(columns):
            ax = axes[r, c]
            ax.imshow(np.clip(images[c, 0], 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="numpy", choices=("numpy", "cupy"), help="numpy (CPU) or cupy (GPU)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--limit-train", type=int, default=3000, help="train on the first N training digits")
    parser.add_argument("--limit-test", type=int, default=1000, help="measure on the first N test digits")
    parser.add_argument("--noise", type=float, default=0.5, help="standard deviation of the added noise")
    parser.add_argument("--base", type=int, default=8, help="channels of the U-Net's first level")
    parser.add_argument("--upsample", default="transpose", choices=("transpose", "upsample"),
                        help="decoder: ConvTranspose2d, or Upsample followed by a 3x3 conv")
    parser.add_argument("--mode", default="nearest", choices=("nearest", "bilinear"), help="Upsample's mode")
    parser.add_argument("--columns", type=int, default=10, help="digits in the picture")
    parser.add_argument("--out", default="unet_denoise.png", help="the PNG to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit('this example saves a picture with matplotlib: pip install -e ".[plot]"')
    try:
        mg.set_backend(args.backend)     # the one switch: every array below lives on this backend
    except mg.BackendUnavailableError as exc:
        sys.exit(f"--backend {args.backend} is not usable on this machine:\n  {exc}")
    mg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train = mg.data.MNIST("train", normalize=False, limit=args.limit_train)     # pixels in [0, 1]
    test = mg.data.MNIST("test", normalize=False, limit=args.limit_test)
    clean_train, _ = train[np.arange(len(train))]                              # (N, 1, 28, 28) float32
    clean_test, _ = test[np.arange(len(test))]
    noisy_test = noisy_copy(clean_test, args.noise, rng)

    model = mg.models.unet(in_channels=1, out_channels=1, base=args.base, depth=2, upsample=args.upsample,
                           mode=args.mode).to(args.backend)
    loss = mg.nn.MSELoss()
    steps_per_epoch = -(-len(clean_train) // args.batch_size)
    optimizer = mg.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = mg.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    print(f"U-Net ({model.num_parameters():,} parameters, {args.upsample} decoder) on {len(clean_train)} noisy "
          f"MNIST digits (noise std {args.noise}), {args.epochs} epochs of {steps_per_epoch} batches, "
          f"backend {args.backend}")
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order, total = rng.permutation(len(clean_train)), 0.0
        for i in range(0, len(order), args.batch_size):
            clean = clean_train[order[i:i + args.batch_size]]                  # (B, 1, 28, 28)
            noisy = noisy_copy(clean, args.noise, rng)                         # fresh noise every time
            optimizer.zero_grad()
            value = loss(model(mg.backend.to_backend(noisy, args.backend)),
                         mg.backend.to_backend(clean, args.backend))
            model.backward_parameters(loss.backward())    # no gradient for the data itself
            optimizer.step()
            scheduler.step()
            total += float(value) * len(clean)
        print(f"epoch {epoch}/{args.epochs}: train MSE {total / len(clean_train):.4f} "
              f"({time.perf_counter() - start:.1f} s)")

    denoised = denoise(model, noisy_test, args.backend)
    noisy_mse = float(np.mean((noisy_test - clean_test) ** 2))
    denoised_mse = float(np.mean((denoised - clean_test) ** 2))
    columns = min(args.columns, len(clean_test))
    save_grid(args.out, [noisy_test, denoised, clean_test], ["noisy", "denoised", "clean"], columns)
    print(f"picture of {columns} test digits (noisy / denoised / clean): {args.out}")
    print(f"test MSE on {len(clean_test)} digits: noisy {noisy_mse:.4f}, denoised {denoised_mse:.4f}")
    return noisy_mse, denoised_mse


if __name__ == "__main__":
    main()
