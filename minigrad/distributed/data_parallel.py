"""DataParallel: the same model on every process, gradients averaged after backward.

    model = mg.distributed.DataParallel(model)      # broadcasts rank 0's weights and buffers
    out = model(x_local); model.backward(grad)      # backward ends with the gradient all-reduce
    optimizer.step()                                # identical update on every rank

Design (as in PyTorch's DistributedDataParallel, without hooks since minigrad's backward is
one explicit call):

- construction: every rank checks it holds the same parameter names/shapes/dtypes, then
  parameters and buffers are broadcast from rank 0, so all replicas start identical;
- after backward: gradients are packed into flat buckets of about ``bucket_mb`` MB (one
  contiguous buffer per bucket, parameters of one dtype/backend per bucket), each bucket is
  averaged with ONE all-reduce (MPI for NumPy, NCCL for CuPy), and scattered back into
  ``param.grad``. Few large messages instead of one per parameter: latency is paid per bucket;
- BatchNorm running statistics (buffers) stay per process after the initial broadcast;
  each process normalises with its own batch statistics (no SyncBatchNorm);
- names: ``state_dict()`` keys are the wrapped model's keys (no ``module.`` prefix), so a
  checkpoint loads into the bare model and back.

``comm_seconds`` accumulates the time of the all-reduce calls alone (on CuPy measured with CUDA
events recorded on the stream just before and after each, so backward work still queued is not
counted), ``sync_seconds`` the whole gradient synchronisation (packing + all-reduce + unpacking).
"""
from __future__ import annotations

import time
from contextlib import contextmanager

from ..runtime.backend import backend_of, get_array_module, module_for
from ..nn.layer import Layer
from . import comm

__all__ = ["DataParallel"]


class DataParallel(Layer):
    """Wrap ``model`` for data-parallel training over ``mg.distributed`` processes.

    Args:
        model: any Layer (Sequential, Graph, a custom layer).
        bucket_mb: target size of a gradient bucket in megabytes (> 0).
        sync_on_backward: all-reduce the gradients at the end of every ``backward()``; with
            False, call ``all_reduce_gradients()`` yourself before ``optimizer.step()``.
        broadcast_buffers: also broadcast buffers (BatchNorm running stats) at construction.
    """

    def __init__(self, model, bucket_mb: float = 25, sync_on_backward: bool = True,
                 broadcast_buffers: bool = True):
        super().__init__()
        if not isinstance(model, Layer):
            raise TypeError(f"DataParallel: expected a minigrad Layer to wrap, got {type(model).__name__}")
        if isinstance(bucket_mb, bool) or not isinstance(bucket_mb, (int, float)) or not bucket_mb > 0:
            raise ValueError(f"DataParallel: bucket_mb must be a positive number, got {bucket_mb!r}")
        object.__setattr__(self, "module", model)  # not a registered child: state-dict names stay bare
        self.bucket_bytes = int(bucket_mb * 2 ** 20)
        self.sync_on_backward = bool(sync_on_backward)
        self.comm_seconds = 0.0
        self.sync_seconds = 0.0
        self.comm_calls = 0
        self._sync_enabled = True
        self._buffers_cache: dict = {}
        self._check_replicas()
        self.broadcast_parameters(buffers=broadcast_buffers)

    # -- traversal: the wrapped model's names, without a prefix ------------------------------
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        if isinstance(memo, str):          # named_modules("prefix"), positionally
            memo, prefix = None, memo
        yield prefix, self
        for name, layer in self.module.named_modules(memo, prefix, remove_duplicate):
            if layer is not self:
                yield name, layer

    def named_children(self):
        return self.module.named_children()

    def children(self):
        return self.module.children()

    # -- replicas ---------------------------------------------------------------------------------
    def _check_replicas(self):
        """Every rank must wrap the same architecture; fail loudly (on all ranks) if not."""
        mine = [(name, p.shape, str(p.dtype)) for name, p in self.named_parameters()]
        everyone = comm.all_gather_object(mine)
        for other_rank, theirs in enumerate(everyone):
            if theirs != mine:
                diff = next(((a, b) for a, b in zip(mine, theirs) if a != b), (len(mine), len(theirs)))
                raise ValueError(f"DataParallel: rank {comm.rank()} and rank {other_rank} wrap different models "
                                 f"(first difference: {diff[0]} vs {diff[1]}); build the same model everywhere")

    def broadcast_parameters(self, buffers: bool = True, root: int = 0):
        """Copy rank ``root``'s parameters (and buffers) to every rank, in place."""
        if comm.world_size() == 1:
            return
        for param in self.parameters():
            param.data = comm.broadcast(param.data, root)
        if buffers:
            for layer in self.modules():
                for name, buf in list(layer._buffers.items()):
                    if buf is not None:
                        layer._buffers[name] = comm.broadcast(buf, root)

    # -- the contract: delegate --------------------------------------------------------------------
    def forward(self, *inputs):
        return self.module(*inputs)

    def backward(self, grad_out):
        """Backward through the model, then (unless disabled) average the gradients over ranks."""
        grad_in = self.module.backward(grad_out)
        if self.sync_on_backward and self._sync_enabled:
            self.all_reduce_gradients()
        return grad_in

    def backward_parameters(self, grad_out):
        """The model's backward_parameters (no input gradient), then the gradient average."""
        self.module.backward_parameters(grad_out)
        if self.sync_on_backward and self._sync_enabled:
            self.all_reduce_gradients()

    @contextmanager
    def no_sync(self):
        """Inside, backward does not all-reduce (gradient accumulation: sync on the last backward)."""
        previous, self._sync_enabled = self._sync_enabled, False
        try:
            yield
        finally:
            self._sync_enabled = previous

    # -- gradient all-reduce in buckets ------------------------------------------------------------
    def buckets(self) -> list:
        """Parameters grouped into buckets: same backend and dtype, about bucket_mb each.

        Parameters go in reverse order (last layer first), the order backward produces them.
        """
        groups: dict = {}
        for param in reversed([p for p in self.parameters() if p.requires_grad]):   # frozen: no gradient
            groups.setdefault((param.backend, str(param.dtype)), []).append(param)
        buckets = []
        for params in groups.values():
            current, size = [], 0
            for param in params:
                nbytes = param.size * param.data.dtype.itemsize
                if current and size + nbytes > self.bucket_bytes:
                    buckets.append(current)
                    current, size = [], 0
                current.append(param)
                size += nbytes
            buckets.append(current)
        return buckets

    def _flat_buffer(self, index, params):
        """A reusable contiguous buffer for bucket ``index`` (re-made if the model moved or was cast)."""
        numel = sum(p.size for p in params)
        xp = get_array_module(params[0].data)
        buf = self._buffers_cache.get(index)
        if buf is None or buf.size != numel or buf.dtype != params[0].dtype or \
                backend_of(buf) != params[0].backend:
            buf = xp.empty((numel,), dtype=params[0].dtype)
            self._buffers_cache[index] = buf
        return buf

    def all_reduce_gradients(self):
        """Average every ``param.grad`` over all processes (one all-reduce per bucket)."""
        if comm.world_size() == 1:
            return
        start = time.perf_counter()
        timers = []
        for index, params in enumerate(self.buckets()):
            flat = self._flat_buffer(index, params)
            offset = 0
            for p in params:                       # pack: grads -> (numel,) buffer (no gradient yet: zeros)
                if p.grad is None:
                    flat[offset:offset + p.size] = 0
                else:
                    flat[offset:offset + p.size] = p.grad.reshape(-1)  # (*p.shape) -> (p.size,)
                offset += p.size
            timers.append(_CollectiveTimer(flat))
            flat = comm.all_reduce(flat, op="mean")
            timers[-1].stop()
            self.comm_calls += 1
            offset = 0
            for p in params:                       # unpack: (numel,) buffer -> grads
                if p.grad is None:
                    p.grad = flat[offset:offset + p.size].reshape(p.shape).copy()  # (p.size,) -> (*p.shape)
                else:
                    p.grad[...] = flat[offset:offset + p.size].reshape(p.shape)  # (p.size,) -> (*p.shape)
                offset += p.size
        self.comm_seconds += sum(timer.seconds() for timer in timers)
        self.sync_seconds += time.perf_counter() - start

    def reset_timers(self):
        self.comm_seconds = self.sync_seconds = 0.0
        self.comm_calls = 0

    def __repr__(self):
        body = repr(self.module).replace("\n", "\n  ")
        return (f"DataParallel(world_size={comm.world_size()}, bucket_mb={self.bucket_bytes / 2 ** 20:g},\n"
                f"  (module): {body}\n)")


class _CollectiveTimer:
    """The time of one collective on ``array``: for a CuPy array, CUDA events recorded on the current
    stream around it (the collective alone, not the backward kernels queued before it); else the host clock.
    ``seconds()`` waits for the collective to finish."""

    def __init__(self, array):
        self._cuda = module_for("cupy").cuda if backend_of(array) == "cupy" else None
        if self._cuda is not None:
            self._start, self._end = self._cuda.Event(), self._cuda.Event()
            self._start.record()
        else:
            self._elapsed = -time.perf_counter()

    def stop(self):
        if self._cuda is not None:
            self._end.record()
        else:
            self._elapsed += time.perf_counter()

    def seconds(self) -> float:
        if self._cuda is not None:
            self._end.synchronize()
            return self._cuda.get_elapsed_time(self._start, self._end) / 1e3   # milliseconds -> seconds
        return self._elapsed
