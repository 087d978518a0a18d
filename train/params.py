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
import inspect
import logging
import re

import mxnet as mx

from config.errors import UserError
from symbol import symbol_builder

LOG = logging.getLogger('train')
GLUONCV_MODEL_NAMES = {   # backbone -> GluonCV model name, from the backbone's arguments
    'mobilenet': lambda kwargs: 'mobilenet%s' % kwargs['multiplier'],
    'mobilenetv2': lambda kwargs: 'mobilenetv2_%s' % kwargs['multiplier'],
    'resnet': lambda kwargs: 'resnet%d_v1' % kwargs['num_layers'],
}
















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




def frozen_param_names(arg_names, pattern):
    """The parameters matching ``pattern`` (``re.match``); data and label inputs excluded."""
    if not pattern:
        return []
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise UserError('--freeze %r is not a regular expression (%s)' % (pattern, err)) from None
    return [name for name in arg_names if name not in ('data', 'label') and regex.match(name)]
