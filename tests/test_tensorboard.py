"""mg.train.TensorBoard and `minigrad train --tensorboard DIR`: event files a stock TensorBoard reads.

The files are read back with TensorBoard's own reader (tensorboard.backend.event_processing), the one
`tensorboard --logdir DIR` uses."""
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad.train.tensorboard import filter_grid

from test_cli import DATA, minigrad_command, needs_mnist

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _read(log_dir):
    accumulator = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0,
                                                                                   "images": 0})
    accumulator.Reload()
    return accumulator


def _small_run(tmp_path, epochs=2):
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    data = mg.data.ArrayDataset(rng.standard_normal((64, 1, 28, 28)).astype("float32"), rng.integers(0, 10, 64))
    model = mg.models.lenet5()
    optimizer = mg.optim.SGD(model.parameters(), lr=0.01)
    callback = mg.train.TensorBoard(tmp_path / "tb")
    mg.train.fit(model, mg.nn.CrossEntropyLoss(), optimizer, mg.data.DataLoader(data, batch_size=16), epochs=epochs,
                 val_loader=mg.data.DataLoader(data, batch_size=32), callbacks=[callback], progress=False, log_every=2)
    return model, tmp_path / "tb"


def test_scalars_histograms_and_filters_read_back_with_tensorboards_reader(tmp_path):
    model, log_dir = _small_run(tmp_path)
    events = _read(log_dir)
    tags = events.Tags()
    assert {"train/loss", "train/acc", "lr", "epoch/train_loss", "epoch/val_acc", "epoch/images_per_s"} \
        <= set(tags["scalars"])
    assert [event.step for event in events.Scalars("train/loss")] == [2, 4, 6, 8]       # every log_every=2 steps
    assert [event.step for event in events.Scalars("epoch/val_loss")] == [4, 8]         # 4 batches per epoch
    names = [name for name, _ in model.named_parameters()]
    assert set(tags["histograms"]) == {f"weights/{n}" for n in names} | {f"grads/{n}" for n in names}
    last = events.Histograms("weights/0.weight")[-1]
    assert last.step == 8 and last.histogram_value.num == model[0].weight.data.size
    assert abs(last.histogram_value.sum - float(model[0].weight.data.sum())) < 1e-3
    assert tags["images"] == ["filters/0"]
    image = events.Images("filters/0")[-1]
    assert (image.width, image.height) == (3 * 6 + 1, 2 * 6 + 1)                        # 6 filters: 3 x 2 tiles


def test_the_filter_grid_scales_each_filter_and_keeps_rgb():
    weight = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    grid = filter_grid(weight)
    assert grid.shape == (3, 1 * 3 + 1, 2 * 3 + 1)
    assert grid.min() == 0.0 and grid.max() == 1.0
    np.testing.assert_allclose(grid[:, 1:3, 1:3].reshape(3, 4), (weight[0].reshape(3, 4) - 0) / 11)


def test_a_missing_tensorboardx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)             # import tensorboardX -> ImportError
    with pytest.raises(ImportError, match=r'mg.train.TensorBoard needs .* pip install -e "\.\[tensorboard\]"'):
        mg.train.TensorBoard("unused")


@needs_mnist
def test_minigrad_train_tensorboard_writes_what_tensorboard_reads(tmp_path):
    result = subprocess.run(minigrad_command() + ["train", *DATA, "--limit-train", "256", "--limit-test", "64",
                                                  "--epochs", "2", "--no-progress", "--out", str(tmp_path / "run"),
                                                  "--tensorboard", str(tmp_path / "tb")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    events = _read(tmp_path / "tb")
    assert [event.step for event in events.Scalars("epoch/val_acc")] == [2, 4]          # 2 batches of 128 per epoch
    assert "weights/0.weight" in events.Tags()["histograms"] and events.Tags()["images"] == ["filters/0"]


def test_minigrad_train_tensorboard_without_the_extra_is_one_line(tmp_path):
    code = ("import sys; sys.modules['tensorboardX'] = None\n"
            "from minigrad.cli import main\n"
            f"sys.exit(main(['train', '--limit-train', '64', '--no-progress', '--out', {str(tmp_path / 'run')!r}, "
            f"'--tensorboard', {str(tmp_path / 'tb')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minigrad train: error: --tensorboard: mg.train.TensorBoard needs")
    assert '".[tensorboard]"' in lines[0]
