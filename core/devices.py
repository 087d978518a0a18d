"""The devices a run uses: ``--gpus`` ids, the CPU, or every visible GPU (MXNet is imported on first use)."""
from config.errors import UserError

CUDA_PACKAGE = 'mxnet-cu112'   # the pip package with GPU support for MXNet 1.9


def parse_gpu_ids(gpus):
    """``'0,1'`` -> ``[0, 1]``; ``''`` -> ``[]``."""
    try:
        ids = [int(item) for item in gpus.split(',') if item.strip()]
    except ValueError:
        raise UserError('--gpus %r must be comma-separated GPU ids such as 0,1 (or empty for the CPU)' % gpus) \
            from None
    if any(gpu < 0 for gpu in ids) or len(set(ids)) != len(ids):
        raise UserError('--gpus %r must be distinct non-negative ids' % gpus)
    return ids


def visible_gpu_count():
    """GPUs this MXNet build can use: 0 without CUDA support or when the CUDA runtime finds none."""
    import mxnet as mx
    try:
        if not mx.runtime.Features().is_enabled('CUDA'):
            return 0
        return int(mx.context.num_gpus())
    except mx.base.MXNetError:       # a CUDA build on a machine without a driver
        return 0


def cuda_available():
    """Whether this MXNet build has CUDA and sees a GPU."""
    return visible_gpu_count() > 0


def default_contexts():
    """``[mx.gpu(0), ..., mx.gpu(N - 1)]`` for the visible GPUs, else ``[mx.cpu()]``; prints which, in one line."""
    import mxnet as mx
    count = visible_gpu_count()
    if count:
        print('device: GPUs %s, every visible one (--gpus IDS chooses, --cpu runs on the CPU)'
              % ','.join(map(str, range(count))))
        return [mx.gpu(gpu) for gpu in range(count)]
    print('device: CPU (this MXNet build has no CUDA or sees no GPU; %s and --gpus IDS for GPUs)' % CUDA_PACKAGE)
    return [mx.cpu()]


def cpu_contexts(cpus):
    """``[mx.cpu(0), ..., mx.cpu(cpus - 1)]``: data-parallel devices on the CPU (one memory, MXNet's executor
    group splits each batch over them as over GPUs; they share the cores, so this is for testing the
    multi-device path where there is no GPU, not for speed)."""
    import mxnet as mx
    return [mx.cpu(index) for index in range(cpus)]


def contexts_for(gpus, cpus=1):
    """``[mx.gpu(i), ...]`` for ``gpus`` ('0,1'), ``cpus`` CPU contexts for ``''`` (or for None with ``cpus``
    above 1), and :func:`default_contexts` for None (neither ``--gpus``, ``--cpu`` nor ``--cpus`` given).

    Raises
    ------
    UserError
        When GPUs are asked for but this MXNet build has no CUDA (or sees no GPU); ``cpus`` below 1, or above 1
        with GPU ids.
    """
    import mxnet as mx
    if cpus < 1:
        raise UserError('--cpus %d must be at least 1' % cpus)
    if gpus is None and cpus == 1:
        return default_contexts()
    ids = parse_gpu_ids(gpus or '')
    if ids and cpus > 1:
        raise UserError('--cpus %d and --gpus %s: choose one kind of device' % (cpus, gpus))
    if not ids:
        return cpu_contexts(cpus)
    if not cuda_available():
        raise UserError('--gpus %s: this MXNet build has no CUDA or sees no GPU; install %s for GPU training, or '
                        'use --cpu' % (gpus, CUDA_PACKAGE))
    return [mx.gpu(gpu) for gpu in ids]
