"""VGG-16 reduced, the SSD paper's backbone: VGG-16 with fc6/fc7 turned into convolutions.

Changes from the ImageNet VGG-16: pool3 rounds up (``pooling_convention='full'``, so 300 -> 38 at relu4_3),
pool5 is 3x3 with stride 1, fc6 is a 3x3 convolution with dilation 6 and 1024 filters, fc7 a 1x1
convolution with 1024 filters; there is no classifier.

Parameter names (the ``vgg16_reduced`` checkpoints of MXNet's SSD example load by name)::

    conv1_1 conv1_2                  64 filters, 3x3     each with _weight (F, C, 3, 3) and _bias (F,)
    conv2_1 conv2_2                  128 filters, 3x3
    conv3_1 conv3_2 conv3_3          256 filters, 3x3
    conv4_1 conv4_2 conv4_3          512 filters, 3x3
    conv5_1 conv5_2 conv5_3          512 filters, 3x3
    fc6                              1024 filters, 3x3, dilation 6
    fc7                              1024 filters, 1x1

Feature layers returned by :func:`feature_layers` (input side S)::

    relu3_3   stride 4    256 channels
    relu4_3   stride 8    512 channels   (38x38 at S=300, 64x64 at S=512)
    relu5_3   stride 16   512 channels
    relu7     stride 16   1024 channels  (19x19 at S=300, 32x32 at S=512)
"""
from collections import OrderedDict

import mxnet as mx

# (group, filters, convolutions) of the five VGG groups.
GROUPS = ((1, 64, 2), (2, 128, 2), (3, 256, 3), (4, 512, 3), (5, 512, 3))


def conv_relu(data, conv_name, relu_name, num_filter, kernel=3, pad=1, dilate=1):
    """A stride-1 convolution named ``conv_name`` followed by a ReLU named ``relu_name``."""
    conv = mx.sym.Convolution(data, kernel=(kernel, kernel), pad=(pad, pad), dilate=(dilate, dilate),
                              num_filter=num_filter, name=conv_name)
    return mx.sym.Activation(conv, act_type='relu', name=relu_name)


def vgg_group(data, group, num_filter, num_conv):
    """The convolutions conv<group>_1 .. conv<group>_<num_conv>; returns the last ReLU, (B, F, h, w)."""
    for index in range(1, num_conv + 1):
        data = conv_relu(data, 'conv%d_%d' % (group, index), 'relu%d_%d' % (group, index), num_filter)
    return data


def pool(data, group):
    """The max pooling after a group: 2x2 stride 2, except pool3 (rounds up) and pool5 (3x3 stride 1)."""
    if group == 5:
        return mx.sym.Pooling(data, pool_type='max', kernel=(3, 3), stride=(1, 1), pad=(1, 1), name='pool5')
    convention = 'full' if group == 3 else 'valid'
    return mx.sym.Pooling(data, pool_type='max', kernel=(2, 2), stride=(2, 2),
                          pooling_convention=convention, name='pool%d' % group)


def feature_layers(data):
    """Build VGG-16 reduced on ``data`` and return its feature layers by name.

    Parameters
    ----------
    data : mx.sym.Symbol
        (B, 3, S, S) mean-subtracted RGB images.

    Returns
    -------
    collections.OrderedDict
        ``'relu3_3'``, ``'relu4_3'``, ``'relu5_3'``, ``'relu7'`` -> (B, C, h, w) symbols; see the module
        docstring for strides and channels.
    """
    layers = OrderedDict()
    body = data
    for group, num_filter, num_conv in GROUPS:
        body = vgg_group(body, group, num_filter, num_conv)
        if group >= 3:
            layers['relu%d_%d' % (group, num_conv)] = body
        body = pool(body, group)
    body = conv_relu(body, 'fc6', 'relu6', 1024, kernel=3, pad=6, dilate=6)
    layers['relu7'] = conv_relu(body, 'fc7', 'relu7', 1024, kernel=1, pad=0)
    return layers
