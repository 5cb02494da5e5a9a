"""``minigrad gradcheck --model NAME``: a spot check of every gradient of a built-in network, as a table.

    minigrad gradcheck --model lenet5                 # 10 random entries of the input and of each parameter
    minigrad gradcheck --model resnet20 --entries 3 --batch-size 2

The network is built as ``minigrad train`` builds it, in float64 and training mode (BatchNorm uses the
batch's statistics, Dropout replays one mask), on a random batch of (N, 1, 28, 28) images (through the
model's batch transform, as in training); its output is
contracted with a random array and every checked entry is compared with central differences
(``mg.gradcheck(..., entries=k, report=True)``, docs/reliability.md). Exit status 0 when every gradient
passes, 1 when one fails (the table names it).
"""
from __future__ import annotations

__all__ = ["add_gradcheck_parser", "cmd_gradcheck"]


def add_gradcheck_parser(sub, positive_int, nonnegative_int) -> None:
    """Add ``gradcheck`` to the subcommands ``sub``; the number types are the parser's (one wording)."""
    from .common import MODELS
    g = sub.add_parser("gradcheck", help="check a built-in network's gradients against finite differences "
                                         "(float64), printed as a table")
    g.add_argument("--model", choices=MODELS, default="lenet5", help="network (default lenet5)")
    g.add_argument("--entries", type=positive_int, default=10, metavar="K",
                   help="random entries checked per input and parameter array (default 10; two forwards each)")
    g.add_argument("--batch-size", type=positive_int, default=2, help="images in the random batch (default 2)")
    g.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the batch, the weights and the "
                                                                     "entries (default 0)")
    g.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    g.set_defaults(func=cmd_gradcheck)


def cmd_gradcheck(args) -> int:
    import numpy

    import minigrad as mg
    from .common import build_model

    mg.set_backend("numpy")
    mg.manual_seed(args.seed)
    model, transform = build_model(args.model)
    model.train()
    x = numpy.random.default_rng(args.seed).standard_normal((args.batch_size, 1, 28, 28))   # (N, 1, 28, 28)
    if transform is not None:                  # vgg_small: padded to (N, 1, 32, 32) as in training
        x = transform(x)
    print(f"minigrad gradcheck --model {args.model}: a random batch of {args.batch_size}, "
          f"{args.entries} random entries per array")
    report = mg.gradcheck(model, x, entries=args.entries, seed=args.seed, report=True)
    return 0 if report.passed else 1
