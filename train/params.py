"""Where the starting weights come from, matched to the network by name with a printed report.

Sources:

- an MXNet checkpoint ``<prefix>-%04d.params`` (``arg:``/``aux:`` entries), for ``--pretrained``,
  ``--resume`` and ``--finetune``;
- a GluonCV ImageNet classifier saved with ``save_parameters`` (e.g. ``mobilenet0.25.params``): the GluonCV
  network is built locally with ``pretrained=False`` (nothing is downloaded), the file is loaded into it,
  and its parameters are renamed onto ours with the backbone's ``gluoncv_name_map`` (in
  ``symbol/<backbone>.py``). GluonCV model names per backbone are in :data:`GLUONCV_MODEL_NAMES`.

Matching never fails silently: :class:`LoadReport` lists what was loaded, what keeps its fresh
initialisation, what was skipped for a shape mismatch, and what in the file was not used.
"""
import dataclasses
import glob
import inspect
import logging
import os
import re

import mxnet as mx

from config.errors import UserError
from symbol import common, symbol_builder

LOG = logging.getLogger('train')
GLUONCV_MODEL_NAMES = {   # backbone -> GluonCV model name, from the backbone's arguments
    'mobilenet': lambda kwargs: 'mobilenet%s' % kwargs['multiplier'],
    'mobilenetv2': lambda kwargs: 'mobilenetv2_%s' % kwargs['multiplier'],
    'resnet': lambda kwargs: 'resnet%d_v1' % kwargs['num_layers'],
}


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
    arrays = {'arg:' + name: value for name, value in arg_params.items()}
    arrays.update({'aux:' + name: value for name, value in aux_params.items()})
    mx.nd.save(path, arrays)


def split_params(saved):
    """``(arg_params, aux_params)`` from a loaded ``.params`` dict keyed ``arg:<name>`` / ``aux:<name>``
    (what :func:`save_params` writes); other keys are ignored. Checkpoints of this project from before its
    extra layers were named as MXNet's SSD example names them (``extra<n>_*``) get the current names."""
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
    try:
        saved = mx.nd.load(path)
    except mx.base.MXNetError:
        return None
    if not (isinstance(saved, dict) and any(key.startswith(('arg:', 'aux:')) for key in saved)):
        return None
    return split_params(saved)


def load_params_file(path, flag):
    """``(arg_params, aux_params)`` of the checkpoint file ``path``; ``flag`` names the option in errors."""
    try:
        saved = mx.nd.load(path)
    except mx.base.MXNetError:
        raise UserError('%s: %s is not an MXNet parameter file' % (flag, path)) from None
    arg_params, aux_params = split_params(saved)
    if not arg_params:
        raise UserError('%s: %s holds no arg: parameters; is it a gluon .params file? Give its path ending in '
                        '.params to --pretrained' % (flag, path))
    return arg_params, aux_params


def gluoncv_model_name(settings):
    """The GluonCV classifier matching the network ``settings`` (from ``symbol_factory.get_config``)."""
    backbone = settings['backbone']
    if backbone not in GLUONCV_MODEL_NAMES:
        raise UserError('--pretrained: no GluonCV name map for backbone %r; use an MXNet checkpoint, or one of '
                        'the backbones %s' % (backbone, ', '.join(sorted(GLUONCV_MODEL_NAMES))))
    return GLUONCV_MODEL_NAMES[backbone](settings['backbone_kwargs'])


def gluoncv_name_map(settings):
    """Our parameter names -> GluonCV's (without the network prefix) for the backbone in ``settings``."""
    name_map = symbol_builder.backbone_module(settings['backbone']).gluoncv_name_map
    wanted = inspect.signature(name_map).parameters
    return name_map(**{key: value for key, value in settings['backbone_kwargs'].items() if key in wanted})


def load_gluoncv_params(path, settings, aux_names):
    """Load a GluonCV ``save_parameters`` file into a locally built classifier and rename it onto our names.

    Parameters
    ----------
    path : str
        The ``.params`` file.
    settings : dict
        Network settings from ``symbol_factory.get_config``.
    aux_names : collection of str
        Our auxiliary-state names (BatchNorm moving statistics).

    Returns
    -------
    arg_params, aux_params : dict of str -> NDArray
    unused : list of str
        GluonCV parameters with no counterpart here (the classifier).
    """
    from gluoncv.model_zoo import get_model  # heavy import, only when a GluonCV file is used
    model_name = gluoncv_model_name(settings)
    net = get_model(model_name, pretrained=False)
    try:
        net.load_parameters(path, ctx=mx.cpu())
    except (AssertionError, mx.base.MXNetError, ValueError) as err:
        raise UserError('--pretrained %s is not a GluonCV %s parameter file (%s)'
                        % (path, model_name, str(err).splitlines()[0][:200])) from None
    theirs = {name[len(net.prefix):]: param.data() for name, param in net.collect_params().items()}
    arg_params, aux_params = {}, {}
    for ours, their_name in gluoncv_name_map(settings).items():
        if their_name in theirs:
            (aux_params if ours in aux_names else arg_params)[ours] = theirs.pop(their_name)
    LOG.info('GluonCV %s: %s mapped onto %d parameters', model_name, path, len(arg_params) + len(aux_params))
    return arg_params, aux_params, sorted(theirs)


@dataclasses.dataclass
class LoadReport:
    """What :func:`match_params` did, by parameter name."""
    source: str
    loaded: list = dataclasses.field(default_factory=list)
    initialised: list = dataclasses.field(default_factory=list)
    mismatched: list = dataclasses.field(default_factory=list)   # (name, their shape, our shape)
    unused: list = dataclasses.field(default_factory=list)

    def mismatch_words(self, examples=3):
        """What does not fit, in words: ``'2 parameters missing from the file (a, b), 1 of another shape (c
        (8, 3) in the file, (4, 3) here)'``; ``''`` when everything fits."""
        parts = []
        other_shape = {name for name, _, _ in self.mismatched}
        missing = [name for name in self.initialised if name not in other_shape]
        if missing:
            parts.append('%d parameters missing from the file (%s)' % (len(missing), ', '.join(missing[:examples])))
        if self.mismatched:
            parts.append('%d of another shape (%s)' % (len(self.mismatched), ', '.join(
                '%s %s in the file, %s here' % item for item in self.mismatched[:examples])))
        return ', '.join(parts)

    def lines(self):
        """The report as log lines: counts, then every new, mismatched and unused name."""
        lines = ['weights from %s: %d loaded, %d newly initialised, %d shape mismatches, %d unused'
                 % (self.source, len(self.loaded), len(self.initialised), len(self.mismatched), len(self.unused))]
        if self.initialised:
            lines.append('  newly initialised: %s' % ', '.join(self.initialised))
        for name, theirs, ours in self.mismatched:
            lines.append('  shape mismatch, initialised anew: %s %s in the file, %s here' % (name, theirs, ours))
        if self.unused:
            lines.append('  unused from the file: %s' % ', '.join(self.unused))
        return lines


def match_params(source, arg_params, aux_params, shapes, reinit=None):
    """Keep the loaded arrays whose name and shape match the network's.

    Parameters
    ----------
    source : str
        Names the source in the report.
    arg_params, aux_params : dict of str -> NDArray
        Loaded arrays.
    shapes : dict of str -> tuple
        Every parameter and auxiliary state of the network with its shape.
    reinit : callable, optional
        ``reinit(name) -> bool``: parameters to initialise anew even when the shapes match.

    Returns
    -------
    arg_params, aux_params : dict
        The arrays to load.
    report : LoadReport
    """
    report = LoadReport(source)
    kept = ({}, {})
    for loaded, out in zip((arg_params, aux_params), kept):
        for name, value in loaded.items():
            if name not in shapes:
                report.unused.append(name)
            elif tuple(value.shape) != tuple(shapes[name]):
                report.mismatched.append((name, tuple(value.shape), tuple(shapes[name])))
            elif not (reinit and reinit(name)):
                out[name] = value
                report.loaded.append(name)
    report.initialised = [name for name in shapes if name not in kept[0] and name not in kept[1]]
    return kept[0], kept[1], report


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
    for name, shape in shapes.items():
        if common.is_class_head_param(name) and name.endswith('_weight') and name in arg_params:
            box_head = name.replace(common.CLS_HEAD, common.LOC_HEAD)
            if box_head in arg_params:     # the checkpoint's own anchor count: 4 box offsets per anchor
                anchors = arg_params[box_head].shape[0] // 4
            else:
                anchors = shape[0] // (num_classes + 1)
            return arg_params[name].shape[0] // anchors - 1
    return None


def frozen_param_names(arg_names, pattern):
    """The parameters matching ``pattern`` (``re.match``); data and label inputs excluded."""
    if not pattern:
        return []
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise UserError('--freeze %r is not a regular expression (%s)' % (pattern, err)) from None
    return [name for name in arg_names if name not in ('data', 'label') and regex.match(name)]
