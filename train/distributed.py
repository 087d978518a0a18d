"""Data-parallel training over several devices and several workers, on MXNet's own kvstores.

Several devices of one process (``--gpus 0,1,2,3``, or ``--cpus N`` contexts on the CPU build) are MXNet's
``Module`` over several contexts: each device computes the gradient of its slice of the batch, the kvstore
(``local``/``device``) sums them. Several workers (processes, on one machine or many) join the group of
MXNet's ps-lite parameter server with ``--kv-store dist_sync`` / ``dist_device_sync`` / ``dist_async``, under
``tools/launch.py``, which gives every process its ``DMLC_*`` environment. This module adds what the trainer
needs on top of that, and nothing of MXNet's distribution is rebuilt:

- **Rank**: the launcher's ``SSD_WORKER_RANK`` (so that its ``[worker k]`` prefix, the log's ``rank k/N`` and
  the data share agree), else the kvstore's own rank; distinct ranks are checked through the kvstore once.
- **Gradient scale**: the losses are averaged over each device's images, so the summed gradient is divided by
  devices x workers in the synchronous modes (the servers sum the workers' pushes), by devices alone under
  ``dist_async`` (each push is applied on its own). It is done once, in the optimizer's ``rescale_grad``.
- **Where the optimizer runs**: in the synchronous modes each worker runs the optimizer itself on the summed
  gradient (``MXNET_UPDATE_ON_KVSTORE=0`` while the module creates its kvstore), so every worker holds the
  optimizer state and ``--resume`` restores it on all of them; the weights start from rank 0's (pulled after
  the kvstore is initialised) and so stay identical. ``dist_async`` needs the servers to run the optimizer:
  its state lives there and is not saved (a resumed run restarts it; the log says so).
- **BatchNorm statistics** are not gradients, so the kvstore does not touch them: :class:`AverageAuxStates`
  averages them over the workers at the end of each epoch (synchronous modes), before anything is validated
  or saved, so the workers end every epoch with identical parameters and statistics.
"""
import contextlib
import dataclasses
import logging
import os
from typing import Any

import mxnet as mx
import numpy as np

from config.errors import UserError
from train.callbacks import Hook

LOG = logging.getLogger('train')

LOCAL_KV_STORES = ('local', 'device', 'nccl')
DIST_KV_STORES = ('dist_sync', 'dist_device_sync', 'dist_sync_device', 'dist_async')
KV_STORES = LOCAL_KV_STORES + DIST_KV_STORES
RANK_VARIABLE = 'SSD_WORKER_RANK'              # set by tools/launch.py: the worker's launch index
RANK_CHECK_KEY = '_ssd_rank_check'             # kvstore key of the one-off check that ranks are distinct
AUX_KEY_PREFIX = '_ssd_aux:'                   # kvstore keys of the BatchNorm statistics averaged per epoch


@dataclasses.dataclass(frozen=True)
class Group:
    """This process's place among the workers.

    Attributes
    ----------
    kv_store : str
        The ``--kv-store`` name.
    kvstore : mx.kv.KVStore or None
        The distributed kvstore this worker joined; None for the local kinds (the module creates its own).
    rank, num_workers : int
    """
    kv_store: str
    kvstore: Any = None
    rank: int = 0
    num_workers: int = 1

    @property
    def distributed(self):
        return self.kv_store in DIST_KV_STORES

    @property
    def synchronous(self):
        """Whether the servers sum every worker's push before anyone pulls (every mode but ``dist_async``)."""
        return self.kv_store != 'dist_async'

    @property
    def writes(self):
        """Whether this worker writes the run's files (checkpoints, curves, validation results): rank 0."""
        return self.rank == 0

    @property
    def tag(self):
        """``'rank 1/2 '`` for a worker of a group, ``''`` alone: the prefix of its log lines."""
        return 'rank %d/%d ' % (self.rank, self.num_workers) if self.distributed else ''

    @property
    def gradient_sum_workers(self):
        """How many workers' gradients one update sums."""
        return self.num_workers if self.distributed and self.synchronous else 1

    @property
    def saves_optimizer_states(self):
        """False under ``dist_async``: the optimizer and its state live on the servers."""
        return self.synchronous

    def module_kvstore(self):
        """What ``Module.init_optimizer`` takes as ``kvstore``: the joined kvstore, or the local kind's name."""
        return self.kvstore if self.kvstore is not None else self.kv_store


def check_kv_store(name):
    """UserError unless ``name`` is a kvstore this trainer runs."""
    if name not in KV_STORES:
        raise UserError('--kv-store %r: choose among %s (dist_* under tools/launch.py)' % (name, ', '.join(KV_STORES)))


def join(kv_store):
    """Join the worker group of ``kv_store`` (creating MXNet's distributed kvstore), or a group of one.

    Raises
    ------
    UserError
        An unknown kvstore; a ``dist_*`` kvstore without the ``DMLC_*`` environment of a launcher, or in a
        process that is not a worker; a bad or repeated ``SSD_WORKER_RANK``.
    """
    check_kv_store(kv_store)
    if kv_store not in DIST_KV_STORES:
        return Group(kv_store)
    role = os.environ.get('DMLC_ROLE')
    if role is None:
        raise UserError('--kv-store %s needs a parameter-server group: start train.py under tools/launch.py, e.g. '
                        'python tools/launch.py -n 2 -- python train.py --kv-store %s ...' % (kv_store, kv_store))
    if role != 'worker':
        raise UserError('--kv-store %s: DMLC_ROLE is %r in this process; train.py runs as a worker (tools/launch.py '
                        'starts the scheduler and servers itself)' % (kv_store, role))
    kvstore = mx.kv.create(kv_store)
    rank = launcher_rank(kvstore.rank, kvstore.num_workers)
    group = Group(kv_store, kvstore, rank, kvstore.num_workers)
    if group.synchronous:
        check_distinct_ranks(group)
    return group


def launcher_rank(kvstore_rank, num_workers):
    """The rank this worker goes by: ``SSD_WORKER_RANK`` when the launcher set it, else the kvstore's."""
    value = os.environ.get(RANK_VARIABLE)
    if value is None:
        return kvstore_rank
    try:
        rank = int(value)
    except ValueError:
        rank = -1
    if not 0 <= rank < num_workers:
        raise UserError('%s=%r must be a whole number in 0..%d (this group has %d workers)'
                        % (RANK_VARIABLE, value, num_workers - 1, num_workers))
    return rank


def check_distinct_ranks(group):
    """Every worker pushes a one-hot vector of its rank; the sum the servers hold must be all ones.

    Raises
    ------
    UserError
        When two workers claim one rank (naming the ranks that nobody has).
    """
    kvstore = group.kvstore
    kvstore.init(RANK_CHECK_KEY, mx.nd.zeros(group.num_workers))
    one_hot = mx.nd.one_hot(mx.nd.array([group.rank]), group.num_workers).reshape(-1)
    kvstore.push(RANK_CHECK_KEY, one_hot)
    counts = mx.nd.zeros(group.num_workers)
    kvstore.pull(RANK_CHECK_KEY, out=counts)
    counts = counts.asnumpy()
    if not np.all(counts == 1):
        raise UserError('two workers have one rank (%s=%d here; ranks nobody has: %s); give each worker its own '
                        'rank, or leave %s unset' % (RANK_VARIABLE, group.rank, np.flatnonzero(counts == 0).tolist(),
                                                     RANK_VARIABLE))


@contextlib.contextmanager
def optimizer_placement(group):
    """While the module creates its kvstore: ``MXNET_UPDATE_ON_KVSTORE`` set so that the optimizer runs on the
    workers in the synchronous distributed modes (see the module notes); restored afterwards."""
    if not (group.distributed and group.synchronous):
        yield
        return
    saved = os.environ.get('MXNET_UPDATE_ON_KVSTORE')
    os.environ['MXNET_UPDATE_ON_KVSTORE'] = '0'
    try:
        yield
    finally:
        if saved is None:
            del os.environ['MXNET_UPDATE_ON_KVSTORE']
        else:
            os.environ['MXNET_UPDATE_ON_KVSTORE'] = saved


def init_optimizer(module, group, optimizer, optimizer_params):
    """``module.init_optimizer`` on the group's kvstore; in the synchronous distributed modes the weights are
    then replaced by rank 0's, which the kvstore holds after its initialisation."""
    with optimizer_placement(group):
        module.init_optimizer(kvstore=group.module_kvstore(), optimizer=optimizer, optimizer_params=optimizer_params)
    if group.distributed and group.synchronous:
        pull_weights(module, group.kvstore)


def pull_weights(module, kvstore):
    """Every parameter of ``module`` (on every device) set to the kvstore's value of its name."""
    executors = module._exec_group          # Module keeps its device arrays private; MXNet's own names
    for position, (name, arrays) in enumerate(zip(executors.param_names, executors.param_arrays)):
        kvstore.pull(name, out=arrays, priority=-position)
    mx.nd.waitall()
    module._params_dirty = True              # get_params reads the devices again


class AverageAuxStates(Hook):
    """At the end of each epoch, the BatchNorm running statistics (auxiliary states) of every device of every
    worker replaced by their mean, through the kvstore (synchronous modes; runs before the other hooks'
    ``after_epoch``, so that validation and checkpoints see the averaged values on every worker)."""

    def __init__(self, kvstore, num_workers):
        self.kvstore, self.num_workers = kvstore, num_workers
        self.ready = False

    def keys_and_arrays(self, module):
        executors = module._exec_group
        return [(AUX_KEY_PREFIX + name, arrays) for name, arrays in zip(executors.aux_names, executors.aux_arrays)]

    def before_train(self, state):
        for key, arrays in self.keys_and_arrays(state.module):
            self.kvstore.init(key, mx.nd.zeros(arrays[0].shape))
        self.ready = True

    def after_epoch(self, state):
        mx.nd.waitall()
        for position, (key, arrays) in enumerate(self.keys_and_arrays(state.module)):
            self.kvstore.push(key, arrays, priority=-position)      # summed over devices, then workers
            self.kvstore.pull(key, out=arrays, priority=-position)
            for array in arrays:
                array /= len(arrays) * self.num_workers
        mx.nd.waitall()
        state.module._params_dirty = True


def sync_hooks(group):
    """The hooks a group needs before every other (empty for a single worker or ``dist_async``)."""
    if group.distributed and group.synchronous:
        return [AverageAuxStates(group.kvstore, group.num_workers)]
    return []
