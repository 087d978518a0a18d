"""Parameter groups of the SSD recipe and their learning-rate / weight-decay multipliers in MXNet's optimizer.

A parameter's group is ``(part, kind)``, read from its name (symbol/common.py names the SSD layers):

- part ``'ssd'``: the extra feature layers (``multi_feat_*``), the L2-normalization scales (``<layer>_scale``)
  and the prediction heads (``*_loc_pred_conv_*``, ``*_cls_pred_conv_*``); ``'backbone'``: everything else;
- kind, by suffix: ``weights``, ``biases``, ``BatchNorm gamma``, ``BatchNorm beta``, ``L2 scales``.

MXNet's own multipliers, what a run trains with when no flag changes them: LR x1 everywhere; WD x0 for every
name that does not end in ``_weight`` or ``_gamma`` (biases, BatchNorm beta), x0.1 for the L2 scales (their
``__wd_mult__``, symbol/common.py), x1 for weights and BatchNorm gamma. The flags change only: the biases' LR
(``bias_lr_mult``), the backbone's LR (``backbone_lr_mult``, times the bias one for backbone biases), and the WD
of BatchNorm gamma and the L2 scales (``norm_decay`` False: x0). Biases never decay either way.

How they reach the optimizer: as ``__lr_mult__`` / ``__wd_mult__`` attributes of a copy of the module's graph,
which ``Module.init_optimizer`` hands to the optimizer it creates. The optimizer keys them by parameter name, so
they hold whatever indices Module gives it (one device: ``i``; several devices updating locally:
``i * num_devices + k``, through ``idx2name``; a kvstore updating on itself: the names), and they travel inside
the pickled optimizer to ``dist_async`` servers. With no flag changed nothing is annotated.
"""
import contextlib
import json

import mxnet as mx

from config.errors import UserError
from config.schema import flag_words
from symbol import common

PARTS = ('backbone', 'ssd')
KINDS = (('_weight', 'weights'), ('_bias', 'biases'), ('_gamma', 'BatchNorm gamma'), ('_beta', 'BatchNorm beta'),
         ('_scale', 'L2 scales'))
NORM_KINDS = ('BatchNorm gamma', 'L2 scales')     # what norm_decay False keeps from decaying


def kind_of(name):
    """``'weights'``, ``'biases'``, ``'BatchNorm gamma'``, ``'BatchNorm beta'`` or ``'L2 scales'`` by suffix
    (``'other'`` for none of them)."""
    return next((kind for suffix, kind in KINDS if name.endswith(suffix)), 'other')


def part_of(name):
    """``'ssd'`` for the extra layers, L2 scales and prediction heads, ``'backbone'`` for the rest."""
    ssd = (name.startswith('multi_feat_') or common.is_prediction_head_param(name)
           or kind_of(name) == 'L2 scales')
    return 'ssd' if ssd else 'backbone'


def group_of(name):
    """``(part, kind)`` of the parameter ``name``."""
    return part_of(name), kind_of(name)


def check_multipliers(solver):
    """UserError naming the flag for a negative LR multiplier of ``solver``."""
    for dotted in ('solver.bias_lr_mult', 'solver.backbone_lr_mult'):
        value = getattr(solver, dotted.split('.')[1])
        if value < 0:
            raise UserError('%s %g is out of range: 0 or more (0 keeps the group fixed)' % (flag_words(dotted), value))


def solver_multipliers(solver, names):
    """:func:`multipliers` of the ``solver`` section of a configuration (checked first) for ``names``."""
    check_multipliers(solver)
    return multipliers(names, solver.bias_lr_mult, solver.backbone_lr_mult, solver.norm_decay)


def multipliers(names, bias_lr_mult=1.0, backbone_lr_mult=1.0, norm_decay=True):
    """The multipliers that differ from MXNet's own (module docstring), by parameter name.

    Parameters
    ----------
    names : iterable of str
        The trained parameters.
    bias_lr_mult, backbone_lr_mult : float
        LR multipliers of the biases and of the backbone (multiplied for the backbone's biases).
    norm_decay : bool
        False: WD x0 for BatchNorm gamma and the L2 scales.

    Returns
    -------
    lr_mults, wd_mults : dict of str -> float
        Only the names whose multiplier changes (both empty with the defaults).
    """
    lr_mults, wd_mults = {}, {}
    for name in names:
        part, kind = group_of(name)
        lr_mult = (backbone_lr_mult if part == 'backbone' else 1.0) * (bias_lr_mult if kind == 'biases' else 1.0)
        if lr_mult != 1.0:
            lr_mults[name] = lr_mult
        if not norm_decay and kind in NORM_KINDS:
            wd_mults[name] = 0.0
    return lr_mults, wd_mults


def annotated(symbol, lr_mults, wd_mults):
    """A copy of ``symbol`` whose variables carry ``__lr_mult__`` / ``__wd_mult__`` from the two dicts."""
    graph = json.loads(symbol.tojson())
    for node in graph['nodes']:
        if node['op'] != 'null':
            continue
        attrs = node.setdefault('attrs', {})
        for attr, values in (('__lr_mult__', lr_mults), ('__wd_mult__', wd_mults)):
            if node['name'] in values:
                attrs[attr] = repr(float(values[node['name']]))
    return mx.sym.load_json(json.dumps(graph))


@contextlib.contextmanager
def optimizer_graph(module, lr_mults, wd_mults):
    """While the optimizer is created: ``module``'s graph annotated with the multipliers (:func:`annotated`).

    ``Module.init_optimizer`` gives the optimizer ``sym=module.symbol``, whose attributes it reads once; the
    module is already bound, so only the optimizer sees the copy, and the module gets its own graph back after.
    Nothing changes without multipliers.
    """
    if not (lr_mults or wd_mults):
        yield
        return
    original = module._symbol        # Module keeps its graph private; swapped for the optimizer's creation only
    module._symbol = annotated(original, lr_mults, wd_mults)
    try:
        yield
    finally:
        module._symbol = original


def trained_names(module):
    """The parameters ``module``'s optimizer updates: its parameters less the fixed (``--freeze``) ones."""
    fixed = set(module._fixed_param_names or ())     # private to Module; read-only use
    return [name for name in module._exec_group.param_names if name not in fixed]


def group_lines(optimizer, names):
    """One line per non-empty group: its name, parameter count and the multipliers ``optimizer`` applies.

    Parameters
    ----------
    optimizer : mx.optimizer.Optimizer
        As created (its ``lr_mult`` / ``wd_mult`` dicts are keyed by name; absent means x1).
    names : sequence of str
        The trained parameters.

    Returns
    -------
    list of str
    """
    groups = {}
    for name in names:
        groups.setdefault(group_of(name), []).append(name)
    lines = []
    for part in PARTS:
        for kind in [kind for _, kind in KINDS] + ['other']:
            members = groups.get((part, kind))
            if members:
                lines.append('parameter group %s %s: %d parameters, LR x%s, WD x%s' % (
                    part, kind, len(members), mult_words(optimizer.lr_mult, members),
                    mult_words(optimizer.wd_mult, members)))
    return lines


def mult_words(mults, names):
    """``'2'``, or ``'0/1'`` when the names' multipliers differ (absent from ``mults``: 1)."""
    return '/'.join('%g' % value for value in sorted({float(mults.get(name, 1.0)) for name in names}))
