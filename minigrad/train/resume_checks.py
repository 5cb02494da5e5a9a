"""Checks on the loop state a training checkpoint holds, before a run resumes from it.

``mg.train.fit`` stores ``train_state`` (epoch, step, metric sums, loader positions, history) in the
checkpoint's JSON metadata. The file's CRC32 proves it was not damaged, not that it makes sense: a
crafted or hand-edited file could say epoch -1, or a step past the end of its own learning-rate
schedule, and a resume would then train at a nonsense position (or fail mid-epoch with a traceback).
``check_train_state`` refuses such a state with one ``CheckpointError`` listing every problem:

    epoch, step           ints >= 0
    step vs. epoch        within the epoch the state is in: epoch*B <= step <= (epoch+1)*B for the
                          B batches per epoch its loader recorded (== epoch*B at an epoch's end)
    step vs. schedule     <= the scheduler's total_steps (OneCycleLR), and the scheduler's position
                          (last_epoch) >= 0
    metric sums           count and correct ints with 0 <= correct <= count, finite loss sum
    records, seconds      a list of dicts; a finite number >= 0

``loader_problems`` lists what is wrong with a stored ``mg.data.DataLoader.state_dict`` (seed, epoch,
batch ints >= 0, a batch within num_batches); ``resume.checked_train_state`` (what ``minigrad train
--resume`` calls first) uses both.
"""
from __future__ import annotations

import math

from ..io.checkpoint import CheckpointError

__all__ = ["check_train_state", "loader_problems", "short_repr"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _meter_problems(meter) -> list:
    if meter is None:
        return []
    if not isinstance(meter, dict):
        return [f"metric sums {meter!r} (expected a dict or null)"]
    count, correct = meter.get("count"), meter.get("correct")
    problems = []
    if not (_is_int(count) and count >= 0 and _is_int(correct) and 0 <= correct <= count):
        problems.append(f"metric counts count={count!r}, correct={correct!r} (expected ints, 0 <= correct <= count)")
    if not _is_number(meter.get("loss_sum")):
        problems.append(f"loss sum {meter.get('loss_sum')!r} (expected a finite number)")
    return problems


def _schedule_problems(train_state, scheduler_state) -> list:
    epoch, step = train_state.get("epoch"), train_state.get("step")
    if not (_is_int(epoch) and epoch >= 0 and _is_int(step) and step >= 0):
        return []                                   # already reported
    problems = []
    loader = train_state.get("train_loader")
    batches = loader.get("num_batches") if isinstance(loader, dict) else None
    if _is_int(batches) and batches > 0:
        first, last = epoch * batches, (epoch + 1) * batches
        at_epoch_end = train_state.get("meter") is None
        if not first <= step <= last or (at_epoch_end and step != first):
            where = f"== {first}" if at_epoch_end else f"in [{first}, {last}]"
            problems.append(f"step {step} is not within epoch {epoch + 1} ({batches} batches per epoch: expected "
                            f"step {where})")
    if isinstance(scheduler_state, dict):
        total, position = scheduler_state.get("total_steps"), scheduler_state.get("last_epoch")
        if _is_int(total) and step > total:
            problems.append(f"step {step} is beyond the learning-rate schedule (total_steps {total})")
        if position is not None and not (_is_int(position) and position >= 0):
            problems.append(f"scheduler position last_epoch={position!r} (expected an int >= 0)")
    return problems


def check_train_state(path, train_state: dict, scheduler_state=None) -> None:
    """Raise CheckpointError naming every problem of ``train_state`` (see the module doc); None if it is sound."""
    problems = []
    for name in ("epoch", "step"):
        value = train_state.get(name)
        if not (_is_int(value) and value >= 0):
            problems.append(f"{name} {value!r} (expected an int >= 0)")
    records = train_state.get("records")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        problems.append("history records (expected a list of dicts)")
    seconds = train_state.get("epoch_seconds")
    if not (_is_number(seconds) and seconds >= 0):
        problems.append(f"epoch_seconds {seconds!r} (expected a finite number >= 0)")
    problems += _meter_problems(train_state.get("meter"))
    problems += _schedule_problems(train_state, scheduler_state)
    if problems:
        raise CheckpointError(f"{path}: the training state in this checkpoint is invalid: {'; '.join(problems)}. "
                              "The file was edited or crafted; resume from another checkpoint or start a new run")


def loader_problems(name, state) -> list:
    """Problems of a DataLoader.state_dict() stored as ``name`` (None: the loader had no state)."""
    if state is None:
        return []
    if not isinstance(state, dict):
        return [f"{name} {short_repr(state)} (expected a mapping of seed, epoch, batch)"]
    keys = ("seed", "epoch", "batch") + (("dataset_size",) if "dataset_size" in state else ())
    problems = [f"{name} {key} {short_repr(state.get(key))} (expected an int >= 0)" for key in keys
                if not (_is_int(state.get(key)) and state.get(key) >= 0)]
    batches = state.get("num_batches")
    if "num_batches" in state and not (_is_int(batches) and batches >= 1):
        problems.append(f"{name} num_batches {short_repr(batches)} (expected an int >= 1)")
    elif _is_int(batches) and _is_int(state.get("batch")) and state["batch"] > batches:
        problems.append(f"{name} batch {state['batch']} is past its {batches} batches")
    return problems


def short_repr(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
