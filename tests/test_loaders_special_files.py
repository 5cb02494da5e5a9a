"""The loaders refuse what is not a regular file, and a safetensors header with a dtype that is not a name.

A FIFO used to make ``mg.load`` / ``mg.io.load_safetensors`` wait forever for a writer and ``/dev/zero``
filled the memory; each case runs in a child process with a time limit and an address-space cap, so the
old behaviour fails the test instead of hanging or exhausting the machine.
"""
import io
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np
import pytest

import minigrad as mg

LOADERS = {"mg.load": "mg.load(path)", "mg.io.load_safetensors": "mg.io.load_safetensors(path)",
           "mg.load_into": "mg.load_into(path, mg.nn.Linear(2, 2))"}
ERRORS = {"mg.load": "CheckpointError", "mg.io.load_safetensors": "SafetensorsError",
          "mg.load_into": "CheckpointError"}


def _special_paths(tmp_path):
    fifo = tmp_path / "weights.fifo"
    os.mkfifo(fifo)
    return {"FIFO": (str(fifo), "a FIFO \\(named pipe\\)"), "/dev/zero": ("/dev/zero", "a character device"),
            "directory": (str(tmp_path), "a directory")}


def _run_child(call, path):
    """Run ``call`` with ``path`` in a child capped at 2 GiB of address space and 60 s; its stdout."""
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        import minigrad as mg
        path = {path!r}
        try:
            {call}
        except Exception as exc:
            print(type(exc).__name__ + ": " + str(exc))
        else:
            print("LOADED")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="needs POSIX FIFOs")
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_loaders_refuse_fifos_devices_and_directories(tmp_path, loader):
    for kind, (path, described) in _special_paths(tmp_path).items():
        try:
            out = _run_child(LOADERS[loader], path)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{loader} hung on a {kind}")
        assert out.startswith(ERRORS[loader] + ": "), (kind, out)
        assert f"{path} is {described.replace(chr(92), '')}, not a regular file" in out, (kind, out)


def test_the_cli_and_the_loaders_give_the_same_message(tmp_path):
    """``minigrad evaluate FIFO`` says what mg.load says (one message for the same mistake)."""
    fifo = tmp_path / "ckpt.npz"
    os.mkfifo(fifo)
    with pytest.raises(mg.io.CheckpointError) as api:
        mg.load(fifo)
    result = subprocess.run([sys.executable, "-m", "minigrad", "evaluate", str(fifo)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert str(api.value) in result.stderr, (str(api.value), result.stderr)


def _safetensors_with_header(header: dict, body: bytes = b"\0" * 8) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


@pytest.mark.parametrize("dtype", [["F32"], {"F": 32}, 32, None])
def test_a_dtype_that_is_not_a_name_is_a_safetensors_error(tmp_path, dtype):
    path = tmp_path / "odd.safetensors"
    path.write_bytes(_safetensors_with_header({"w": {"dtype": dtype, "shape": [2], "data_offsets": [0, 8]}}))
    with pytest.raises(mg.io.SafetensorsError, match=r"odd.safetensors: cannot read .*tensor 'w' has dtype"):
        mg.io.load_safetensors(path)


def test_a_regular_file_still_loads(tmp_path):
    model = mg.nn.Linear(2, 2)
    mg.save(model, tmp_path / "m.npz")
    mg.io.save_safetensors(model, tmp_path / "m.safetensors")
    assert np.array_equal(mg.load(tmp_path / "m.npz")["model"]["weight"], model.weight.data)
    assert np.array_equal(mg.io.load_safetensors(tmp_path / "m.safetensors")["weight"], model.weight.data)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs Unix sockets")
def test_sockets_and_symlink_loops_are_each_loaders_own_error(tmp_path):
    """A socket (ENXIO on open) and a loop of symbolic links (ELOOP) used to escape as a bare OSError."""
    sock_path = tmp_path / "w.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    try:
        for path, words in ((sock_path, "cannot open the"), (loop, "cannot open the")):
            for call, error in ((mg.load, mg.io.CheckpointError), (mg.io.load_safetensors, mg.io.SafetensorsError)):
                with pytest.raises(error, match=words):
                    call(path)
    finally:
        server.close()


def _checkpoint_with_meta(tmp_path, edit):
    """A checkpoint of Linear(4, 3) + Adam whose JSON header is edited by ``edit`` (CRC32 recomputed)."""
    model = mg.nn.Linear(4, 3)
    source, target = tmp_path / "good.npz", tmp_path / "edited.npz"
    mg.save(model, source, optimizer=mg.optim.Adam(model.parameters()))
    members = {name: zipfile.ZipFile(source).read(name) for name in zipfile.ZipFile(source).namelist()}
    meta = json.loads(np.load(io.BytesIO(members["__meta__.npy"])).tobytes())
    edit(meta)
    text = json.dumps(meta).encode()

    def npy(array):
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()
    members["__meta__.npy"] = npy(np.frombuffer(text, np.uint8))
    members["__meta_crc32__.npy"] = npy(np.array([zlib.crc32(text)], np.uint64))
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target, model


@pytest.mark.parametrize("edit", [
    lambda m: m.pop("model_keys"), lambda m: m.__setitem__("model_keys", ["x"]),
    lambda m: m.__setitem__("model_keys", 1.5), lambda m: m.__setitem__("optimizer", {}),
    lambda m: m["optimizer"].__setitem__("param_groups", "x"), lambda m: m["optimizer"].__setitem__("indices", "x"),
    lambda m: m.__setitem__("scheduler", {"a": 1})],
    ids=["no model_keys", "unknown key", "model_keys a number", "optimizer empty", "param_groups a string",
         "indices a string", "scheduler without state"])
def test_a_well_formed_header_of_the_wrong_structure_is_a_checkpoint_error(tmp_path, edit):
    path, model = _checkpoint_with_meta(tmp_path, edit)
    with pytest.raises(mg.io.CheckpointError, match="edited.npz: "):
        mg.load(path)
    before = model.weight.data.copy()
    with pytest.raises(mg.io.CheckpointError, match="edited.npz: "):
        mg.load_into(path, model, optimizer=mg.optim.Adam(model.parameters()))
    assert np.array_equal(model.weight.data, before)                   # untouched on refusal
