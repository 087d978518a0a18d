"""Inception-v3 feature layers, named as MXNet's SSD example (``example/ssd/symbol/inceptionv3.py``).

The layout and names are those of MXNet's Inception-v3 ImageNet symbol (the example's classifier, and
``example/image-classification/symbols/inception-v3.py``), so its checkpoints and the SSD example's
``inceptionv3`` detectors load by name. Every convolution is a unit ``<unit>``: a convolution without bias
``<unit>_conv2d``, a BatchNorm ``<unit>_batchnorm`` with gamma fixed to 1 (``fix_gamma=True``, eps 1e-3),
then a ReLU ``<unit>_relu``.

Parameter names, per unit (``F`` its filters, ``C`` its input channels, ``kh x kw`` its kernel)::

    <unit>_conv2d_weight                           (F, C, kh, kw)
    <unit>_batchnorm_gamma, _beta                  (F,)  (gamma stays 1)
    <unit>_batchnorm_moving_mean, _moving_var      (F,)  auxiliary states

Units: the stem ``conv``, ``conv_1``, ``conv_2``, ``conv_3``, ``conv_4``, then in each block ``<block>``
(``mixed``, ``mixed_1`` .. ``mixed_10``) the branch units ``<block>_conv``, ``<block>_tower_conv``,
``<block>_tower_conv_1`` .., ``<block>_tower_1_conv`` .., ``<block>_tower_2_conv`` and, in ``mixed_9`` and
``mixed_10``, ``<block>_tower_mixed_conv``, ``<block>_tower_mixed_conv_1``, ``<block>_tower_1_mixed_conv``,
``<block>_tower_1_mixed_conv_1`` (every block is spelled out in :data:`BLOCKS`). Each block ends in the
concatenation ``ch_concat_<block>_chconcat``. The classifier after ``mixed_10`` (``global_pool``,
``fc1_weight``, ``fc1_bias``) is not built; its parameters in an ImageNet file are simply unused, and
``--pretrained <prefix> --epoch <n>`` of such a file loads the other 470 arrays (94 units) by name.

Convolutions and poolings without padding shrink the maps: for an input side S, with ``f(n) = (n - 3) // 2
+ 1`` (a 3x3 stride-2 window without padding), the blocks ``mixed`` .. ``mixed_2`` have side
``c = f(f(f(S) - 2) - 2)``, ``mixed_3`` .. ``mixed_7`` side ``f(c)`` and ``mixed_8`` .. ``mixed_10`` side
``f(f(c))``; S must be at least 75.

Feature layers returned by :func:`feature_layers` (sides at S = 300 and 512)::

    ch_concat_mixed_2_chconcat    288 channels    35x35, 61x61
    ch_concat_mixed_7_chconcat    768 channels    17x17, 30x30
    ch_concat_mixed_10_chconcat   2048 channels   8x8,   14x14
"""
from collections import OrderedDict

import mxnet as mx

BN_EPS = 1e-3          # mx.sym.BatchNorm's defaults, which the Inception-v3 symbol keeps
BN_MOMENTUM = 0.9
EXPOSED_BLOCKS = ('mixed_2', 'mixed_7', 'mixed_10')   # blocks whose outputs feature_layers returns
SPLIT_FILTERS = 384    # filters of each of the 1x3 and 3x1 units that end the towers of the E blocks

# Blocks in order: (name, kind, pooling type, filters of the 1x1 unit after the pooling (0: none), branches).
# A branch is (suffix of its unit names, see branch_names; its units as (kernel h, kernel w, stride, filters)).
# Kinds: A and C keep the side; B and D halve it (their stride-2 units and their pooling are unpadded); in E
# every branch but the first ends in the two units of split_ends.
TOWERS_A = (('_conv', ((1, 1, 1, 64),)),
            ('_tower', ((1, 1, 1, 48), (5, 5, 1, 64))),
            ('_tower_1', ((1, 1, 1, 64), (3, 3, 1, 96), (3, 3, 1, 96))))


def towers_c(width):
    """Branches of a C block whose 7x7 factorised towers are ``width`` wide."""
    return (('_conv', ((1, 1, 1, 192),)),
            ('_tower', ((1, 1, 1, width), (1, 7, 1, width), (7, 1, 1, 192))),
            ('_tower_1', ((1, 1, 1, width), (7, 1, 1, width), (1, 7, 1, width), (7, 1, 1, width),
                          (1, 7, 1, 192))))


TOWERS_E = (('_conv', ((1, 1, 1, 320),)),
            ('_tower', ((1, 1, 1, 384),)),
            ('_tower_1', ((1, 1, 1, 448), (3, 3, 1, 384))))
BLOCKS = (
    ('mixed', 'A', 'avg', 32, TOWERS_A),
    ('mixed_1', 'A', 'avg', 64, TOWERS_A),
    ('mixed_2', 'A', 'avg', 64, TOWERS_A),
    ('mixed_3', 'B', 'max', 0, (('_conv', ((3, 3, 2, 384),)),
                                ('_tower', ((1, 1, 1, 64), (3, 3, 1, 96), (3, 3, 2, 96))))),
    ('mixed_4', 'C', 'avg', 192, towers_c(128)),
    ('mixed_5', 'C', 'avg', 192, towers_c(160)),
    ('mixed_6', 'C', 'avg', 192, towers_c(160)),
    ('mixed_7', 'C', 'avg', 192, towers_c(192)),
    ('mixed_8', 'D', 'max', 0, (('_tower', ((1, 1, 1, 192), (3, 3, 2, 320))),
                                ('_tower_1', ((1, 1, 1, 192), (1, 7, 1, 192), (7, 1, 1, 192), (3, 3, 2, 192))))),
    ('mixed_9', 'E', 'avg', 192, TOWERS_E),
    ('mixed_10', 'E', 'max', 192, TOWERS_E),
)


def conv_unit(data, name, num_filter, kernel=(1, 1), stride=1, pad=None):
    """Convolution ``<name>_conv2d``, BatchNorm ``<name>_batchnorm``, ReLU ``<name>_relu``.

    Parameters
    ----------
    data : mx.sym.Symbol
        (B, C, H, W).
    name : str
        The unit's name.
    num_filter : int
        F.
    kernel : tuple of int
        (kh, kw).
    stride : int
        1 or 2.
    pad : tuple of int, optional
        (ph, pw); None: ``(kh // 2, kw // 2)`` at stride 1 (the size is kept), none at stride 2.

    Returns
    -------
    mx.sym.Symbol
        (B, F, H', W').
    """
    if pad is None:
        pad = (0, 0) if stride > 1 else (kernel[0] // 2, kernel[1] // 2)
    conv = mx.sym.Convolution(data, num_filter=num_filter, kernel=kernel, stride=(stride, stride), pad=pad,
                              no_bias=True, name=name + '_conv2d')
    norm = mx.sym.BatchNorm(conv, fix_gamma=True, eps=BN_EPS, momentum=BN_MOMENTUM, name=name + '_batchnorm')
    return mx.sym.Activation(norm, act_type='relu', name=name + '_relu')


def branch_names(block, suffix, length):
    """Unit names of a branch: ``'<block>_conv'`` for the 1x1 branch, else ``'<block><suffix>_conv'``,
    ``'<block><suffix>_conv_1'``, ... (``length`` names)."""
    if suffix == '_conv':
        return [block + suffix]
    return ['%s%s_conv' % (block, suffix)] + ['%s%s_conv_%d' % (block, suffix, k) for k in range(1, length)]


def branch(data, block, suffix, units):
    """The units of one branch in sequence; returns its (B, F_last, h, w) output."""
    for name, (kernel_h, kernel_w, stride, filters) in zip(branch_names(block, suffix, len(units)), units):
        data = conv_unit(data, name, filters, (kernel_h, kernel_w), stride)
    return data


def split_ends(data, name):
    """A 1x3 and a 3x1 unit on the same input (``<name>_mixed_conv``, ``<name>_mixed_conv_1``); two outputs."""
    return [conv_unit(data, name + '_mixed_conv', SPLIT_FILTERS, (1, 3)),
            conv_unit(data, name + '_mixed_conv_1', SPLIT_FILTERS, (3, 1))]


def pooling_branch(data, block, pool, projection, downsample):
    """The pooling branch: 3x3 pooling (stride 2 unpadded, or stride 1 padded), then a 1x1 unit if any."""
    stride, pad = ((2, 2), (0, 0)) if downsample else ((1, 1), (1, 1))
    pooled = mx.sym.Pooling(data, kernel=(3, 3), stride=stride, pad=pad, pool_type=pool,
                            name='%s_pool_%s_pool' % (pool, block))
    if not projection:
        return pooled
    return conv_unit(pooled, block + '_tower_2_conv', projection)


def inception_block(data, block, kind, pool, projection, branches):
    """One block of :data:`BLOCKS`: its branches concatenated along channels, ``ch_concat_<block>_chconcat``.

    Returns
    -------
    mx.sym.Symbol
        (B, sum of the branches' filters (+ C for an unprojected pooling), h', w'); h' = h, or (h - 3) // 2 + 1
        in blocks B and D.
    """
    outputs = []
    for suffix, units in branches:
        out = branch(data, block, suffix, units)
        outputs += split_ends(out, block + suffix) if kind == 'E' and suffix != '_conv' else [out]
    outputs.append(pooling_branch(data, block, pool, projection, downsample=kind in ('B', 'D')))
    return mx.sym.concat(*outputs, dim=1, name='ch_concat_%s_chconcat' % block)


def stem(data):
    """The five stem units and two max poolings, only ``conv_2`` padded: (B, 3, S, S) -> (B, 192, c, c), ``c``
    as in the module docstring."""
    body = conv_unit(data, 'conv', 32, (3, 3), stride=2)
    body = conv_unit(body, 'conv_1', 32, (3, 3), pad=(0, 0))
    body = conv_unit(body, 'conv_2', 64, (3, 3))
    body = mx.sym.Pooling(body, kernel=(3, 3), stride=(2, 2), pool_type='max', name='pool')
    body = conv_unit(body, 'conv_3', 80, (1, 1))
    body = conv_unit(body, 'conv_4', 192, (3, 3), pad=(0, 0))
    return mx.sym.Pooling(body, kernel=(3, 3), stride=(2, 2), pool_type='max', name='pool1')


def feature_layers(data):
    """Build Inception-v3 up to ``mixed_10`` on ``data`` and return its feature layers by name.

    Parameters
    ----------
    data : mx.sym.Symbol
        (B, 3, S, S) images, S >= 75.

    Returns
    -------
    collections.OrderedDict
        ``'ch_concat_mixed_2_chconcat'``, ``'ch_concat_mixed_7_chconcat'``, ``'ch_concat_mixed_10_chconcat'``
        -> (B, C, h, w) symbols; see the module docstring for channels and sides.
    """
    layers = OrderedDict()
    body = stem(data)
    for block, kind, pool, projection, branches in BLOCKS:
        body = inception_block(body, block, kind, pool, projection, branches)
        if block in EXPOSED_BLOCKS:
            layers[body.name] = body
    return layers
