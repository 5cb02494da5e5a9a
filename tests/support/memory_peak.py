"""traced_peak(call): the result of ``call()`` (or the exception it raised) and the peak bytes tracemalloc traced while it
ran, for the tests that hold the memory guard to what a forward really allocates."""
import tracemalloc


def traced_peak(call):
    """(result or exception, peak bytes traced while ``call`` ran)."""
    tracemalloc.start()
    try:
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - returned for the test to check
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
