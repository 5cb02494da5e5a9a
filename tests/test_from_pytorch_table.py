"""docs/from_pytorch.md's method-by-method tables list every public name of torch.nn.Module,
torch.optim.Optimizer, LRScheduler, ReduceLROnPlateau and every scheduler class of the installed PyTorch,
each with a verdict; what they call "same" or "different" exists in minigrad under the same name."""
import re
from pathlib import Path

import pytest

import minigrad as mg

torch = pytest.importorskip("torch")
from torch.optim import lr_scheduler as torch_schedulers  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "from_pytorch.md"
VERDICT = re.compile(r"^(same|different: .+|not supported: .+|same: .+|same, .+)$")


def _table(heading):
    text = DOC.read_text()
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    end = text.find("\n## ", start + len(heading)) if end < 0 else end
    rows = {}
    for line in text[start:end].splitlines():
        match = re.match(r"^\| `([\w.]+)` \| (.+) \|$", line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} is listed twice"
            rows[match.group(1)] = match.group(2)
    return rows


def _public(cls):
    return {name for name in dir(cls) if not name.startswith("_")}


def _scheduler_classes():
    return {name for name in dir(torch_schedulers) if not name.startswith("_") and isinstance(
        getattr(torch_schedulers, name), type) and issubclass(getattr(torch_schedulers, name),
                                                              torch_schedulers.LRScheduler)} - {"LRScheduler"}


@pytest.mark.parametrize("heading,torch_cls,ours", [
    ("### `torch.nn.Module`", torch.nn.Module, mg.nn.Layer),
    ("### `torch.optim.Optimizer`", torch.optim.Optimizer, mg.optim.Optimizer),
])
def test_every_public_name_has_a_verdict_and_what_exists_exists(heading, torch_cls, ours):
    rows = _table(heading)
    assert set(rows) == _public(torch_cls)
    for name, verdict in rows.items():
        assert VERDICT.match(verdict), (name, verdict)
        if not verdict.startswith("not supported"):
            assert hasattr(ours, name), f"{name}: the table says {verdict!r}, but {ours.__name__} has no {name}"
        else:
            assert not hasattr(ours, name), f"{name} exists in minigrad: the table should say how it compares"


def test_the_scheduler_table_lists_every_method_and_class():
    rows = _table("### `torch.optim.lr_scheduler`")
    expected = ({f"LRScheduler.{n}" for n in _public(torch_schedulers.LRScheduler)}
                | {f"ReduceLROnPlateau.{n}" for n in _public(torch_schedulers.ReduceLROnPlateau)
                   - _public(torch_schedulers.LRScheduler)}
                | _scheduler_classes())
    assert set(rows) == expected
    for name, verdict in rows.items():
        assert VERDICT.match(verdict), (name, verdict)
        owner, _, method = name.partition(".")
        exists = (hasattr(getattr(mg.optim.lr_scheduler, owner, None), method) if method
                  else hasattr(mg.optim.lr_scheduler, owner))
        assert exists == (not verdict.startswith("not supported")), (name, verdict)
