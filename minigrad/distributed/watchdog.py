"""MPI collectives with a deadline: a stopped, hung or dead rank ends the job with a message, not a hang.

A blocking ``Allreduce`` waits forever for a rank that was stopped (SIGSTOP, a debugger, a frozen
machine): the other ranks spin at 100 % CPU indefinitely. Every MPI collective of mg.distributed runs
through ``Watchdog.call``, which only notes the time it starts (the collective itself is the same
blocking MPI call as before: no cost on the hot path). A background thread per process, on a private
duplicate of the communicator (MPI_THREAD_MULTIPLE, mpi4py's default):

    each PERIOD  answers the other ranks' pings, and checks the collective in progress, if any
    deadline     ``timeout`` seconds (default 120; ``mg.distributed.set_timeout``, ``--dist-timeout``,
                 ``MINIGRAD_DIST_TIMEOUT``) inside one collective: ping every other rank and wait up
                 to ``grace`` seconds for the answers; a rank that does not answer is unresponsive (if
                 the collective completes meanwhile, nothing ends: the next one gets a new deadline)
    end          print one line naming the collective and the unresponsive ranks, tell every rank that
                 answered (each prints the same line with its own rank and acknowledges), then
                 ``comm.Abort``: mpirun ends every process of the job, the stopped one included, with
                 a non-zero exit status

A live rank answers pings whatever it is doing (computing, or waiting in a collective), so a rank that is
merely slower than the others is not named as unresponsive; only a silent one is. The job still ends
at the deadline when every rank answers; the line (``timeout_reason``) then says where each rank is:
every rank inside the collective (it is slow, e.g. a large broadcast on a slow link, or the timeout is
too short for it: a larger ``--dist-timeout`` lets it finish), or not all of them in it (a rank computing
longer than the timeout between collectives, or a program whose ranks call different collectives).
Without MPI_THREAD_MULTIPLE the collectives keep no deadline, and ``Watchdog`` says so once with a warning.
"""
from __future__ import annotations

import atexit
import sys
import threading
import time
import warnings

from ..runtime import settings

__all__ = ["Watchdog", "DEFAULT_TIMEOUT", "ENV", "resolve_timeout", "timeout_reason"]

DEFAULT_TIMEOUT = 120.0
ENV = "MINIGRAD_DIST_TIMEOUT"
EXIT_CODE = 1
PERIOD = 0.05             # seconds between the background thread's rounds
_PING, _PONG, _ABORT, _ACK = 701, 702, 703, 704


def resolve_timeout(seconds=None) -> float:
    """seconds, else $MINIGRAD_DIST_TIMEOUT, else DEFAULT_TIMEOUT; must be a finite number > 0."""
    if seconds is None:
        from_env = settings.dist_timeout()      # $MINIGRAD_DIST_TIMEOUT; a bad value raises SettingError
        return DEFAULT_TIMEOUT if from_env is None else from_env
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < float("inf"):
        raise ValueError(f"mg.distributed: timeout must be a finite number of seconds > 0, got {seconds!r}")
    return float(seconds)


def timeout_reason(what: str, count: int, timeout: float, silent, pongs) -> str:
    """Why the job ends: collective ``what`` (#``count`` on this rank) did not complete within ``timeout`` s.

    silent: the other ranks that did not answer the pings; pongs: {rank: (collectives started, the one in
    progress or None)} of the other ranks that did.
    """
    head = f"{what} (collective #{count}) did not complete within {timeout:g} s (--dist-timeout): "
    if silent:
        return head + (f"rank {silent[0]} does" if len(silent) == 1 else
                       f"ranks {', '.join(map(str, silent))} do") + " not respond (stopped, hung or dead)"
    if all(state == (count, what) for state in pongs.values()):
        return head + (f"every rank responds and is inside collective #{count} ({what}), which has not completed "
                       f"within the timeout: it is slow (e.g. a large message on a slow link) or the timeout is "
                       f"too short for it; a larger --dist-timeout (or {ENV}) lets it finish")
    return head + "every rank responds, but not all of them are inside it: " + ", ".join(
        f"rank {r} is " + (f"in collective #{n} ({name})" if name else f"outside collectives after #{n}")
        for r, (n, name) in sorted(pongs.items()))


class Watchdog:
    """Deadline for the collectives of one communicator (see the module doc). Create it on every rank."""

    def __init__(self, comm, timeout=None):
        from mpi4py import MPI
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.timeout = resolve_timeout(timeout)
        self.count = 0                     # collectives started so far
        self.what = None                   # the one in progress ...
        self.started = None                # ... and when it started (time.monotonic()), None between them
        self._sends = []                   # outstanding small sends, kept alive until complete
        self._stop = threading.Event()
        self.enabled = MPI.Query_thread() == MPI.THREAD_MULTIPLE
        if not self.enabled:
            warnings.warn("mg.distributed: MPI was initialised without MPI_THREAD_MULTIPLE, so collectives have "
                          "no timeout (a stopped process hangs the job)", RuntimeWarning, stacklevel=3)
            return
        self.side = comm.Dup()             # pings never mix with the program's messages (a collective call)
        self._thread = threading.Thread(target=self._watch, name="mg.distributed watchdog", daemon=True)
        self._thread.start()
        atexit.register(self.close)        # before mpi4py's MPI_Finalize (atexit runs in reverse order)

    @property
    def grace(self) -> float:
        """Seconds to wait for ping answers after a deadline passes."""
        return min(5.0, max(1.0, self.timeout / 2))

    def call(self, collective, what: str):
        """Run ``collective()`` (a blocking MPI collective) under the deadline; returns its result."""
        self.count += 1
        self.what, self.started = what, time.monotonic()
        try:
            return collective()
        finally:
            self.started = None

    def close(self):
        """Stop the background thread (at exit, before MPI is finalized)."""
        self._stop.set()
        if self.enabled and self._thread.is_alive():
            self._thread.join()

    # -- the background thread -------------------------------------------------------------------------
    def _watch(self):
        while not self._stop.wait(PERIOD):
            self._serve()
            started = self.started
            if started is not None and time.monotonic() - started > self.timeout:
                self._timed_out()

    def _isend(self, obj, dest, tag):
        self._sends = [r for r in self._sends if not r.Test()]
        self._sends.append(self.side.isend(obj, dest=dest, tag=tag))

    def _serve(self, pongs=None):
        """Answer pings; record pongs (into ``pongs``: rank -> what it is doing); obey an abort notice."""
        from mpi4py import MPI
        status = MPI.Status()
        while self.side.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
            source, tag = status.Get_source(), status.Get_tag()
            message = self.side.recv(source=source, tag=tag)
            if tag == _PING:
                self._isend((self.count, self.what if self.started is not None else None), source, _PONG)
            elif tag == _PONG and pongs is not None:
                pongs[source] = message
            elif tag == _ABORT:
                self._end(f"{message} (reported by rank {source})", ack_to=source)

    def _timed_out(self):
        collective = (self.count, self.started)
        others = [r for r in range(self.size) if r != self.rank]
        for other in others:
            self._isend(self.rank, other, _PING)
        pongs, deadline = {}, time.monotonic() + self.grace
        while len(pongs) < len(others) and time.monotonic() < deadline:
            self._serve(pongs)
            time.sleep(1e-3)
        if (self.count, self.started) != collective:   # it completed while the answers came: no timeout
            return
        silent = [r for r in others if r not in pongs]
        self._end(timeout_reason(self.what, self.count, self.timeout, silent, pongs), notify=sorted(pongs))

    def _end(self, reason, notify=(), ack_to=None):
        """Print why, tell the ranks in ``notify`` (waiting briefly for their acknowledgements), abort the job."""
        from mpi4py import MPI
        # one write of the whole line: print() writes the newline separately when stderr is unbuffered
        # (PYTHONUNBUFFERED), and mpirun then interleaves the ranks' lines mid-line
        sys.stderr.write(f"mg.distributed: rank {self.rank}: {reason}; ending the job\n")
        sys.stderr.flush()
        if ack_to is not None:
            self._isend(self.rank, ack_to, _ACK)
        for other in notify:
            self._isend(reason, other, _ABORT)
        acks, status, deadline = set(), MPI.Status(), time.monotonic() + min(self.grace, 2.0)
        while (acks != set(notify) or not all(r.Test() for r in self._sends)) and time.monotonic() < deadline:
            if self.side.Iprobe(source=MPI.ANY_SOURCE, tag=_ACK, status=status):
                acks.add(self.side.recv(source=status.Get_source(), tag=_ACK))
            time.sleep(1e-3)
        self.comm.Abort(EXIT_CODE)
