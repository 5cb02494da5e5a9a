"""``minigrad evaluate CHECKPOINT``: test accuracy of a checkpoint (or run directory) of ``minigrad train``."""
from __future__ import annotations

import json
import os

from .common import CLIError, Printer, build_model, load_datasets, run_config_of, set_backend, show_progress

__all__ = ["cmd_evaluate"]


def _load_metadata(path) -> dict:
    from ..io.checkpoint import load
    try:
        return dict(load(path)["metadata"])
    except (OSError, ValueError, KeyError) as exc:
        raise CLIError(f"cannot read checkpoint {path}: {exc}") from None


def cmd_evaluate(args) -> int:
    import minigrad as mg
    from ..data import DataLoader
    from ..io.regular_file import check_regular

    say = Printer(args.json)
    if not args.checkpoint.strip():
        raise CLIError("the checkpoint path is empty: give a checkpoint.npz or the --out directory of a "
                       "`minigrad train` run")
    if os.path.isdir(args.checkpoint):          # a run directory: its checkpoint.npz
        from ..train.loop import CHECKPOINT_NAME
        args.checkpoint = os.path.join(args.checkpoint, CHECKPOINT_NAME)
    if not os.path.exists(args.checkpoint):
        raise CLIError(f"no such checkpoint: {args.checkpoint}; give a checkpoint.npz or the --out directory of "
                       "a `minigrad train` run")
    check_regular(args.checkpoint, None, CLIError, "checkpoint")   # a FIFO or a device: mg.load's message
    config = run_config_of(args.checkpoint, _load_metadata(args.checkpoint), needed=("model",))
    set_backend(args.backend)
    _, test_set = load_datasets(args.data_root, None, args.limit_test, need_train=False)
    model, transform = build_model(config["model"])
    model.to(args.backend)
    mg.load_into(args.checkpoint, model)
    loader = DataLoader(test_set, batch_size=args.batch_size, transform=transform)
    result = mg.train.evaluate(model, loader, mg.nn.CrossEntropyLoss(), progress=show_progress(args))
    result.update(model=config["model"], checkpoint=args.checkpoint, backend=args.backend)
    say(f"{config['model']} from {args.checkpoint}: test accuracy {100 * result['accuracy']:.2f}% "
        f"({round(result['accuracy'] * result['n'])}/{result['n']}), loss {result['loss']:.4f}, "
        f"{result['seconds']:.1f} s ({result['images_per_s']:.0f} images/s)")
    if args.json:
        print(json.dumps(result), flush=True)
    return 0
