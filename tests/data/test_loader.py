"""DataLoader and ArrayDataset: batching, reproducible shuffling, resume mid-epoch, backends."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.data import ArrayDataset, DataLoader


def make_dataset(n=10, features=3):
    x = np.arange(n * features, dtype=np.float32).reshape(n, features)
    return ArrayDataset(x, np.arange(n, dtype=np.int64))


def epoch_labels(loader):
    return [y.tolist() for _, y in loader]


def test_batches_cover_dataset_in_order(backend):
    loader = DataLoader(make_dataset(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [len(y) for _, y in batches] == [4, 4, 2]
    xp = mg.backend.active_module()
    for x, y in batches:
        assert mg.backend.backend_of(x) == backend and mg.backend.backend_of(y) == backend
        assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(mg.backend.to_backend(xp.concatenate([y for _, y in batches]), "numpy"),
                                  np.arange(10))
    dropped = DataLoader(make_dataset(10), batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [len(y) for _, y in dropped] == [4, 4]


def test_shuffle_is_a_permutation_and_changes_every_epoch():
    loader = DataLoader(make_dataset(50), batch_size=8, shuffle=True, seed=3)
    first, second = sum(epoch_labels(loader), []), sum(epoch_labels(loader), [])
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second and first != list(range(50))


def test_shuffle_reproducible_from_seed_and_manual_seed():
    a = DataLoader(make_dataset(40), batch_size=8, shuffle=True, seed=7)
    b = DataLoader(make_dataset(40), batch_size=8, shuffle=True, seed=7)
    assert [epoch_labels(a) for _ in range(2)] == [epoch_labels(b) for _ in range(2)]
    assert epoch_labels(DataLoader(make_dataset(40), batch_size=8, shuffle=True, seed=8)) != \
        epoch_labels(DataLoader(make_dataset(40), batch_size=8, shuffle=True, seed=7))
    mg.manual_seed(11)
    c = DataLoader(make_dataset(40), batch_size=8, shuffle=True)
    mg.manual_seed(11)
    d = DataLoader(make_dataset(40), batch_size=8, shuffle=True)
    assert c.seed == d.seed and epoch_labels(c) == epoch_labels(d)


def test_resume_mid_epoch_gives_the_remaining_batches():
    transform = mg.data.RandomCrop(2, padding=1)
    dataset = ArrayDataset(np.random.default_rng(0).standard_normal((30, 1, 2, 2)).astype(np.float32),
                           np.arange(30))
    reference = DataLoader(dataset, batch_size=4, shuffle=True, seed=5, transform=transform)
    full = [list(reference) for _ in range(2)]                  # two epochs, uninterrupted

    interrupted = DataLoader(dataset, batch_size=4, shuffle=True, seed=5, transform=transform)
    list(interrupted)                                           # epoch 0 complete
    it = iter(interrupted)
    seen = [next(it) for _ in range(3)]                         # 3 batches of epoch 1, then "killed"
    state = interrupted.state_dict()
    assert state["epoch"] == 1 and state["batch"] == 3

    resumed = DataLoader(dataset, batch_size=4, shuffle=True, seed=999, transform=transform)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(seen) + len(rest) == len(full[1])
    for (x, y), (x_ref, y_ref) in zip(seen + rest, full[1]):
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(y, y_ref)
    # after the resumed epoch the next iteration is epoch 2, as in the uninterrupted loader
    assert [y.tolist() for _, y in resumed] == [y.tolist() for _, y in reference]


def test_state_after_complete_epoch_starts_next_epoch():
    a = DataLoader(make_dataset(12), batch_size=5, shuffle=True, seed=1)
    list(a)
    state = a.state_dict()
    assert state["batch"] == len(a)
    b = DataLoader(make_dataset(12), batch_size=5, shuffle=True, seed=1)
    b.load_state_dict(state)
    assert epoch_labels(b) == epoch_labels(a)


def test_state_for_another_dataset_refused():
    state = DataLoader(make_dataset(12), batch_size=5).state_dict()
    with pytest.raises(ValueError, match="12 examples"):
        DataLoader(make_dataset(13), batch_size=5).load_state_dict(state)


def test_per_example_dataset_is_stacked():
    samples = [(np.full((2,), i, dtype=np.float32), i) for i in range(5)]
    x, y = next(iter(DataLoader(samples, batch_size=3)))
    assert x.shape == (3, 2) and y.tolist() == [0, 1, 2]


def test_bad_arguments():
    with pytest.raises(ValueError, match="same length"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(TypeError, match="must be a NumPy or CuPy array"):
        ArrayDataset([1, 2, 3])
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        DataLoader(make_dataset(), batch_size=0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        DataLoader(make_dataset(), seed=-1)
    with pytest.raises(ValueError, match="every batch would be dropped"):
        DataLoader(make_dataset(3), batch_size=4, drop_last=True)
    with pytest.raises(TypeError, match="transform must be callable"):
        DataLoader(make_dataset(), transform="flip")


@pytest.mark.gpu
def test_each_batch_is_copied_to_the_device_once():
    """Inputs and labels: one host-to-device copy each per batch, the transform runs on the device, and
    nothing is read back. Counted on the simulated CuPy (MINIGRAD_TEST_CUPY=sim)."""
    from support import sim_cupy as sim
    if not sim.installed():
        pytest.skip("host-device copies are counted on the simulated CuPy (MINIGRAD_TEST_CUPY=sim)")
    mg.set_backend("cupy")
    transform = mg.data.Compose([mg.data.RandomHorizontalFlip(), mg.data.Normalize(0.5, 2.0)])
    x = np.random.default_rng(0).random((10, 1, 4, 4)).astype(np.float32)
    loader = DataLoader(ArrayDataset(x, np.arange(10)), batch_size=4, shuffle=True, seed=0, transform=transform)
    copies, reads = sim.host_copies, sim.host_reads
    batches = list(loader)
    # per batch: inputs, labels, and the flip decisions (drawn on the host, so that a seed gives the same
    # augmentation on every backend); once: Normalize's mean and std
    assert sim.host_copies - copies == 3 * len(batches) + 2 == 11
    assert sim.host_reads == reads
    list(loader)
    assert sim.host_copies - copies == 11 + 3 * len(batches)


@pytest.mark.gpu
def test_device_batches_come_through_pinned_buffers_on_a_copy_stream_one_batch_ahead():
    """Each batch array is staged in a reused pinned buffer and copied on the loader's own stream; the
    next batch's copy is started before a batch is handed out, and the compute stream waits for the copy
    (an event) instead of the host. Observed on the simulated CuPy (MINIGRAD_TEST_CUPY=sim)."""
    from support import sim_cupy as sim
    if not sim.installed():
        pytest.skip("copies and streams are observed on the simulated CuPy (MINIGRAD_TEST_CUPY=sim)")
    mg.set_backend("cupy")
    x = np.random.default_rng(0).random((10, 1, 4, 4)).astype(np.float32)
    y = np.arange(10)
    loader = DataLoader(ArrayDataset(x, y), batch_size=4, shuffle=True, seed=0)
    sim.copy_log.clear()
    sim.stream_waits.clear()
    pinned_before = sim.pinned_allocations
    seen = []
    for bx, by in loader:
        seen.append((bx.get(), by.get(), len(sim.copy_log)))
    copy_stream = sim.copy_log[0][0]
    assert copy_stream is not None and copy_stream is not sim.cuda.get_current_stream()
    assert all(stream is copy_stream and pinned for stream, pinned in sim.copy_log)
    assert len(sim.copy_log) == 2 * len(seen)               # one copy per array per batch
    assert [count for _, _, count in seen] == [4, 6, 6]     # the next batch already copied when one is handed out
    compute_waits = [event for stream, event in sim.stream_waits if stream is sim.cuda.get_current_stream()]
    assert len(compute_waits) == len(seen)                  # the compute stream waits for each batch's copy
    assert sim.pinned_allocations - pinned_before == 4      # 2 slots x 2 arrays, reused for the third batch
    list(loader)
    assert sim.pinned_allocations - pinned_before == 4      # ... and in the next epochs
    order = loader.order(0)
    for b, (bx, by, _) in enumerate(seen):                  # the same batches as ever
        np.testing.assert_array_equal(bx, x[order[4 * b:4 * b + 4]])
        np.testing.assert_array_equal(by, y[order[4 * b:4 * b + 4]])
