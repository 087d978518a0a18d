"""MXNet checkpoint files: ``<prefix>-symbol.json`` and ``<prefix>-%04d.params`` with ``arg:`` / ``aux:`` keys.

The one reader and writer of the arrays; :class:`core.run_dir.RunDir` names the files of a run and calls these.
"""
import glob
import logging
import os
import re

from config.errors import UserError

LOG = logging.getLogger('train')


def checkpoint_paths(prefix, epoch):
    """``(symbol, params, states)`` paths of checkpoint ``epoch`` of ``prefix``."""
    return ('%s-symbol.json' % prefix, '%s-%04d.params' % (prefix, epoch), '%s-%04d.states' % (prefix, epoch))


def available_epochs(prefix):
    """Epoch numbers of the ``<prefix>-NNNN.params`` files that exist, ascending."""
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r'-(\d{4})\.params$')
    found = (pattern.match(os.path.basename(path)) for path in glob.glob(glob.escape(prefix) + '-*.params'))
    return sorted(int(match.group(1)) for match in found if match)


def save_params(path, arg_params, aux_params):
    """``mx.nd.save`` with the ``arg:`` / ``aux:`` keys that Module, SymbolBlock and the loaders here read."""
    import mxnet as mx  # imported on use: entry scripts set OMP_NUM_THREADS first
    arrays = {'arg:' + name: value for name, value in arg_params.items()}
    arrays.update({'aux:' + name: value for name, value in aux_params.items()})
    mx.nd.save(path, arrays)


def split_params(saved):
    """``(arg_params, aux_params)`` from a loaded ``.params`` dict keyed ``arg:<name>`` / ``aux:<name>``
    (what :func:`save_params` writes); other keys are ignored. Checkpoints of this project from before its
    extra layers were named as MXNet's SSD example names them (``extra<n>_*``) get the current names."""
    from symbol import common  # imports mxnet
    arg_params, aux_params = {}, {}
    for key, value in saved.items():
        kind, _, name = key.partition(':')
        {'arg': arg_params, 'aux': aux_params}.get(kind, {})[name] = value
    renamed = common.rename_legacy_extra_layers(arg_params)
    if renamed:
        LOG.info('renamed %d parameters of the earlier extra<n>_* naming (e.g. %s -> %s)', len(renamed),
                 *sorted(renamed.items())[0])
        arg_params = {renamed.get(name, name): value for name, value in arg_params.items()}
    return arg_params, aux_params


def load_checkpoint_params(prefix, epoch, flag):
    """``(arg_params, aux_params)`` of ``<prefix>-<epoch>.params``; ``flag`` names the option in errors."""
    path = checkpoint_paths(prefix, epoch)[1]
    if not os.path.isfile(path):
        raise UserError('%s: checkpoint %s does not exist (check --prefix and the epoch number)' % (flag, path))
    return load_params_file(path, flag)


def read_checkpoint_file(path):
    """``(arg_params, aux_params)`` of ``path`` when it is an MXNet checkpoint's ``.params`` (``arg:``/``aux:``
    keys, as Module saves and MXNet's model zoo ships them); None for other files, such as GluonCV's
    ``save_parameters``, or a file MXNet cannot read."""
    import mxnet as mx  # imported on use: entry scripts set OMP_NUM_THREADS first
    try:
        saved = mx.nd.load(path)
    except mx.base.MXNetError:
        return None
    if not (isinstance(saved, dict) and any(key.startswith(('arg:', 'aux:')) for key in saved)):
        return None
    return split_params(saved)


def load_params_file(path, flag):
    """``(arg_params, aux_params)`` of the checkpoint file ``path``; ``flag`` names the option in errors."""
    import mxnet as mx  # imported on use: entry scripts set OMP_NUM_THREADS first
    try:
        saved = mx.nd.load(path)
    except mx.base.MXNetError:
        raise UserError('%s: %s is not an MXNet parameter file' % (flag, path)) from None
    arg_params, aux_params = split_params(saved)
    if not arg_params:
        raise UserError('%s: %s holds no arg: parameters; is it a gluon .params file? Give its path ending in '
                        '.params to --pretrained' % (flag, path))
    return arg_params, aux_params


def checkpoint_num_classes(arg_params, shapes, num_classes):
    """The class count a checkpoint was trained for, read from a class-head weight's shape.

    Parameters
    ----------
    arg_params : dict
        The checkpoint's parameters.
    shapes : dict
        The network's shapes; its class heads have ``anchors * (num_classes + 1)`` filters. The anchor count is
        the checkpoint's own (its box head has ``anchors * 4`` filters) when it has that head, so another
        anchor layout is not mistaken for another class count.
    num_classes : int
        The network's class count.

    Returns
    -------
    int or None
        None when the checkpoint has no class head of this network.
    """
    from symbol import common  # imports mxnet
    for name, shape in shapes.items():
        if common.is_class_head_param(name) and name.endswith('_weight') and name in arg_params:
            box_head = name.replace(common.CLS_HEAD, common.LOC_HEAD)
            if box_head in arg_params:     # the checkpoint's own anchor count: 4 box offsets per anchor
                anchors = arg_params[box_head].shape[0] // 4
            else:
                anchors = shape[0] // (num_classes + 1)
            return arg_params[name].shape[0] // anchors - 1
    return None


# ------------------------------------------------------------------------------------------ optimizer state
# MXNet's own ``.states`` file is a pickle (``Updater.get_states``), and unpickling runs whatever code a file
# carries. This project writes the same state as an NDArray file, which holds only arrays: key
# ``'<index>/<position>of<count>'`` for each array of a parameter's state (``count`` 1 for a lone array, more
# for a tuple such as Adam's mean and variance), ``'<index>/none'`` for a state of None (SGD without momentum;
# a one-element placeholder: MXNet's legacy shapes read a 0-size array's (0,) as unknown and cannot save it).
# The updater of a kvstore that updates (several devices, ``--kv-store local``) keys its state by parameter
# name instead of index: ``'name:<parameter name>/...'``.
STATE_KEY = re.compile(r'^(?:(\d+)|name:([^/]+))/(?:(\d+)of(\d+)|none)$')


def module_updater(module):
    """The ``mx.optimizer.Updater`` that holds ``module``'s optimizer state (on the kvstore when it updates)."""
    if getattr(module, '_update_on_kvstore', False):
        return module._kvstore._updater    # Module and KVStore keep it private; the state is read only here
    return module._updater


def state_arrays(states):
    """``{key: NDArray}`` for ``Updater.states`` (``{index: None | NDArray | tuple of NDArray}``)."""
    import mxnet as mx
    arrays = {}
    for index, state in states.items():
        head = 'name:%s' % index if isinstance(index, str) else '%d' % index
        if state is None:
            arrays[head + '/none'] = mx.nd.zeros((1,))
            continue
        parts = list(state) if isinstance(state, (tuple, list)) else [state]
        for position, array in enumerate(parts):
            arrays['%s/%dof%d' % (head, position, len(parts) if isinstance(state, (tuple, list)) else 0)] = array
    return arrays


def states_from_arrays(arrays):
    """The inverse of :func:`state_arrays`; None when a key does not follow the format."""
    grouped = {}
    for key, array in arrays.items():
        match = STATE_KEY.match(key)
        if not match:
            return None
        index = int(match.group(1)) if match.group(1) is not None else match.group(2)
        if match.group(3) is None:
            grouped[index] = None
        else:
            grouped.setdefault(index, {})[int(match.group(3))] = (int(match.group(4)), array)
    states = {}
    for index, parts in grouped.items():
        if parts is None:
            states[index] = None
        elif next(iter(parts.values()))[0] == 0:           # a lone array
            states[index] = parts[0][1]
        else:
            states[index] = tuple(parts[position][1] for position in sorted(parts))
    return states


def save_optimizer_states(module, path):
    """``module``'s optimizer state as an NDArray file (no pickle): see :data:`STATE_KEY`."""
    import mxnet as mx  # imported on use: entry scripts set OMP_NUM_THREADS first
    mx.nd.save(path, state_arrays(module_updater(module).states))


def load_optimizer_states(module, path, flag, trust_pickled=False):
    """Restore the state :func:`save_optimizer_states` wrote; an MXNet pickle only with ``trust_pickled``.

    Raises
    ------
    UserError
        A pickled file without ``trust_pickled`` (unpickling runs the code a file carries), or a file that is
        neither format.
    """
    import mxnet as mx  # imported on use: entry scripts set OMP_NUM_THREADS first
    try:
        arrays = mx.nd.load(path)
    except mx.base.MXNetError:
        arrays = None
    states = states_from_arrays(arrays) if isinstance(arrays, dict) else None
    if states is not None:
        updater = module_updater(module)
        updater.states = states
        updater.states_synced = dict.fromkeys(states, False)
        return 'arrays'
    if not is_pickle(path):
        raise UserError('%s: %s is not an optimizer state file (truncated?); use --finetune to start from the '
                        'weights with a fresh optimizer' % (flag, path))
    if not trust_pickled:
        raise UserError('%s: %s is a pickled optimizer state (MXNet\'s own format), and unpickling runs any code '
                        'the file carries; pass --trust-pickled-states if you trust where it came from, or use '
                        '--finetune to start with a fresh optimizer' % (flag, path))
    module.load_optimizer_states(path)
    return 'pickle'


def is_pickle(path):
    """Whether ``path`` starts like a pickle (protocol 2 or later: byte 0x80, then the protocol number)."""
    with open(path, 'rb') as handle:
        head = handle.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5
