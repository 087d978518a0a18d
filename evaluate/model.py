"""A trained SSD as evaluate.py, demo.py, deploy.py and quantization.py load it from ``<prefix>``.

``train.py`` writes, beside its checkpoints, ``<prefix>-config.yaml`` (network, data shape, network overrides,
input mean/std, classes, NMS settings) and ``<prefix>.classes``; :func:`load_model` rebuilds the same graph
from them, so the user passes only ``--prefix`` and ``--epoch``. Checkpoints without those files (e.g. from
MXNet's old SSD example) load too when ``--network``, ``--data-shape`` and ``--num-class`` (or
``--class-names``) are given; they are fed the example's input mean (123, 117, 104) unless the mean is given.
Flags that contradict the checkpoint are one-line errors naming both values.
"""
import dataclasses

import mxnet as mx

from config.defaults import EXAMPLE_MEAN_PIXELS
from config.errors import UserError
from config.schema import DEFAULTS, to_dict
from core.checkpoint import checkpoint_num_classes
from core.run_dir import RunDir
from dataset.imdb import read_class_names
from symbol import common, multibox, symbol_factory


@dataclasses.dataclass
class TrainedModel:
    """Everything needed to rebuild and run a trained SSD.

    Attributes
    ----------
    prefix : str
    epoch : int
    network : str
    data_shape : int
    class_names : tuple of str
    mean_pixels, std_pixels : (3,) floats, RGB
    network_overrides : dict
        ``symbol_factory`` settings the model was trained with.
    nms_thresh : float
    force_suppress : bool
    arg_params, aux_params : dict of str to mx.nd.NDArray
    """
    prefix: str
    epoch: int
    network: str
    data_shape: int
    class_names: tuple
    mean_pixels: tuple
    std_pixels: tuple
    network_overrides: dict
    nms_thresh: float
    force_suppress: bool
    arg_params: dict
    aux_params: dict

    @property
    def num_classes(self):
        return len(self.class_names)

    def deploy_symbol(self, nms_topk=multibox.NMS['nms_topk']):
        """The deploy graph: input ``data`` (B, 3, S, S), output ``detection`` (B, A, 6)."""
        return symbol_factory.get_symbol(self.network, self.data_shape, self.num_classes,
                                         nms_thresh=self.nms_thresh, force_suppress=self.force_suppress,
                                         nms_topk=nms_topk, **self.network_overrides)

    def deploy_params(self, symbol=None):
        """``(arg_params, aux_params)`` restricted to what ``symbol`` (default: the deploy graph) uses."""
        symbol = symbol if symbol is not None else self.deploy_symbol()
        args, auxs = set(symbol.list_arguments()), set(symbol.list_auxiliary_states())
        return ({name: value for name, value in self.arg_params.items() if name in args},
                {name: value for name, value in self.aux_params.items() if name in auxs})


def resolve_class_names(run, config, num_class, class_names):
    """The class names: ``--class-names``, else ``<prefix>.classes``, else the config, else ``class_<i>``."""
    saved = run.read_class_names()
    if class_names:
        names = tuple(read_class_names(class_names))
    elif saved:
        names = saved
    elif config is not None and config.data.class_names:
        names = tuple(config.data.class_names)
    elif num_class:
        names = tuple('class_%d' % index for index in range(num_class))
    else:
        raise UserError('%s does not exist and no --num-class or --class-names was given' % run.classes_path)
    if num_class and num_class != len(names):
        raise UserError('class count mismatch: --num-class %d, checkpoint %s has %d classes (%s)'
                        % (num_class, run.prefix, len(names), ', '.join(names)))
    return names


def pick(flag, given, saved, default=None):
    """The value from the config, the flag's when the config has none; a contradiction is a UserError."""
    if saved is None:
        if given is None and default is None:
            raise UserError('%s is needed: the checkpoint has no -config.yaml (or -config.json) to read it from' % flag)
        return given if given is not None else default
    if given is not None and given != saved:
        raise UserError('%s %s contradicts the checkpoint, trained with %s; drop the flag or pass %s'
                        % (flag, given, saved, saved))
    return saved


def load_model(prefix, epoch, network=None, data_shape=None, num_class=None, class_names=None,
               nms_thresh=None, force_suppress=None, mean_pixels=None, std_pixels=None):
    """Read checkpoint ``epoch`` of ``prefix`` with its training configuration.

    Parameters
    ----------
    prefix : str
        Exactly the prefix train.py saved under (nothing is appended).
    epoch : int
    network, data_shape, num_class, class_names :
        Optional; must agree with the checkpoint's configuration (``data_shape`` may differ: the networks
        are fully convolutional, anchors follow the feature maps). Needed when there is no configuration.
    nms_thresh, force_suppress, mean_pixels, std_pixels :
        Optional overrides of the trained values. Without them and without a ``-config.json`` the mean is
        :data:`config.defaults.EXAMPLE_MEAN_PIXELS` (what MXNet's SSD example trained with).

    Returns
    -------
    TrainedModel

    Raises
    ------
    UserError
        Missing epoch (the existing ones are listed), contradicting flags, unreadable files.
    """
    run = RunDir(prefix)
    config = run.read_config()
    arg_params, aux_params = run.read_params(epoch)
    model = config.model if config is not None else None
    trained_mean = tuple(config.data.mean_pixels) if config is not None else EXAMPLE_MEAN_PIXELS
    trained_std = tuple(config.data.std_pixels) if config is not None else DEFAULTS.data.std_pixels
    return TrainedModel(
        prefix=prefix, epoch=epoch,
        network=pick('--network', network, model.network if model else None),
        data_shape=data_shape if data_shape is not None else pick('--data-shape', None,
                                                                  model.data_shape if model else None),
        class_names=resolve_class_names(run, config, num_class, class_names),
        mean_pixels=tuple(mean_pixels or trained_mean), std_pixels=tuple(std_pixels or trained_std),
        network_overrides=dict(to_dict(model.network_overrides) if model and model.network_overrides else {}),
        nms_thresh=first_given(nms_thresh, model and model.nms_thresh, multibox.NMS['nms_thresh']),
        force_suppress=bool(first_given(force_suppress, model and model.force_suppress,
                                        multibox.NMS['force_suppress'])),
        arg_params=arg_params, aux_params=aux_params)


def first_given(*values):
    """The first value that is not None."""
    return next(value for value in values if value is not None)


def expected_shapes(symbol, data_shape):
    """Every parameter and auxiliary state of ``symbol`` with its shape for ``(1, 3, S, S)`` input."""
    return common.param_shapes(symbol, data=(1, 3, data_shape, data_shape))


def check_params_fit(model, symbol):
    """UserError unless the checkpoint holds every parameter of ``symbol`` with the shape it needs.

    The class count is checked first, so that a wrong ``--num-class`` is named as such, with both numbers.
    """
    shapes = expected_shapes(symbol, model.data_shape)
    source = RunDir(model.prefix).params_path(model.epoch)
    trained_classes = checkpoint_num_classes(model.arg_params, shapes, model.num_classes)
    if trained_classes is not None and trained_classes != model.num_classes:
        raise UserError('class count mismatch: %d classes asked for (%s), but %s was trained with %d; pass '
                        '--num-class %d or matching --class-names' % (
                            model.num_classes, ', '.join(model.class_names), source, trained_classes,
                            trained_classes))
    saved = dict(model.arg_params, **model.aux_params)
    missing = [name for name in shapes if name not in saved]
    if missing:
        saved_shapes = {name: tuple(value.shape) for name, value in saved.items()}
        raise UserError('%s lacks %d parameters of network %s (e.g. %s); check --network%s' % (
            source, len(missing), model.network, ', '.join(missing[:3]),
            symbol_factory.fitting_networks_hint(saved_shapes)))
    for name, shape in shapes.items():
        if tuple(saved[name].shape) != tuple(shape):
            raise UserError('%s: parameter %s has shape %s, network %s needs %s; check --network' % (
                source, name, tuple(saved[name].shape), model.network, tuple(shape)))


def bind_detector(model, ctx, batch_size, symbol=None, nms_topk=multibox.NMS['nms_topk']):
    """A Module bound for inference on ``(batch_size, 3, S, S)`` batches with the model's weights.

    Parameters
    ----------
    model : TrainedModel
    ctx : list of mx.Context
    batch_size : int
    symbol : mx.sym.Symbol, optional
        The graph to run (default: ``model.deploy_symbol(nms_topk)``); its output is ``detection``.

    Raises
    ------
    UserError
        When the checkpoint's weights do not fit the graph (class count named first).

    Returns
    -------
    mx.mod.Module
        ``forward(batch, is_train=False)`` then ``get_outputs()[0]``: (B, A, 6) detections
        ``[cls, score, xmin, ymin, xmax, ymax]`` normalized, ``cls`` -1 for suppressed rows.
    """
    symbol = symbol if symbol is not None else model.deploy_symbol(nms_topk)
    check_params_fit(model, symbol)
    module = mx.mod.Module(symbol, data_names=('data',), label_names=None, context=ctx)
    module.bind(data_shapes=[('data', (batch_size, 3, model.data_shape, model.data_shape))], for_training=False)
    arg_params, aux_params = model.deploy_params()
    module.set_params(arg_params, aux_params, allow_missing=False, allow_extra=True)
    return module


def preprocess_image(image_bgr, model):
    """One image as the network takes it, resized the way the validation iterator resizes.

    Parameters
    ----------
    image_bgr : (H, W, 3) uint8 array
        As ``cv2.imread`` returns it.
    model : TrainedModel

    Returns
    -------
    (1, 3, S, S) float32 array
        RGB, ``(pixel - mean_pixels) / std_pixels``, bilinear resize to ``S = model.data_shape``.
    """
    import cv2
    import numpy as np
    side = model.data_shape
    rgb = cv2.cvtColor(cv2.resize(image_bgr, (side, side), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    data = (rgb.astype(np.float32) - np.asarray(model.mean_pixels, np.float32)) / np.asarray(model.std_pixels,
                                                                                            np.float32)
    return data.transpose(2, 0, 1)[None]
