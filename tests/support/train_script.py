"""A small training run for tests/test_train.py: LeNet-5 on 384 MNIST images (12 steps per epoch), 2 epochs, checkpoints every 4 steps.

    python train_script.py OUT [--resume] [--delay SECONDS]

``--delay`` sleeps after every step (so a test can kill the process mid-epoch); it does not
change what is computed. Writes the final weights to OUT/final.npz.
"""
import argparse
import os
import time

import minigrad as mg


class Sleep(mg.train.Callback):
    def __init__(self, seconds):
        self.seconds = seconds

    def on_step_end(self, state):
        time.sleep(self.seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    mg.manual_seed(0)
    model = mg.models.lenet5()
    train = mg.data.MNIST("train", limit=384)
    loader = mg.data.DataLoader(train, batch_size=32, shuffle=True,
                                transform=mg.data.RandomCrop(28, padding=2, fill=-0.4242))
    val = mg.data.DataLoader(mg.data.MNIST("test", limit=128), batch_size=64)
    optimizer = mg.optim.Adam(model.parameters(), lr=2e-3)
    scheduler = mg.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=2 * len(loader))
    mg.train.fit(model, mg.nn.CrossEntropyLoss(), optimizer, loader, 2, val_loader=val, scheduler=scheduler,
                 callbacks=[Sleep(args.delay)] if args.delay else (), checkpoint_dir=args.out, checkpoint_every=4,
                 resume=args.resume, log_path=os.path.join(args.out, "history.jsonl"), progress=False, log_every=4)
    mg.save(os.path.join(args.out, "final.npz"), model, optimizer)


if __name__ == "__main__":
    main()
