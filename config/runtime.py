"""Process-level settings that must be applied before MXNet is imported.

MXNet runs its CPU operators on one OpenMP thread unless ``OMP_NUM_THREADS`` is set, which halves the speed
on two cores. Every entry point calls :func:`configure_threads` before ``import mxnet``.
"""
import os
import sys
import warnings


def available_cores():
    """Number of CPU cores this process may run on (respects affinity masks and containers)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def configure_threads(num_threads=None):
    """Set ``OMP_NUM_THREADS`` to the core count unless the user already chose a value.

    Parameters
    ----------
    num_threads : int, optional
        Thread count to use when the user has not set ``OMP_NUM_THREADS``; defaults to the core count.

    Returns
    -------
    int
        The thread count in effect.
    """
    if 'OMP_NUM_THREADS' not in os.environ:
        os.environ['OMP_NUM_THREADS'] = str(num_threads or available_cores())
        if 'mxnet' in sys.modules:
            warnings.warn('configure_threads() called after mxnet was imported; '
                          'OMP_NUM_THREADS takes effect only for threads created later')
    return int(os.environ['OMP_NUM_THREADS'])


def decode_threads():
    """Threads for the C++ record iterator's decoding: one core is left for the training loop."""
    return max(available_cores() - 1, 1)


def cpu_model_and_flags(cpuinfo='/proc/cpuinfo'):
    """``(model name, set of flags)`` of the first CPU in ``cpuinfo``; ``(platform name, set())`` when it cannot be
    read (not Linux)."""
    import platform

    model, flags = '', set()
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                key, _, value = line.partition(':')
                if key.strip() == 'model name' and not model:
                    model = value.strip()
                elif key.strip() == 'flags' and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags
