"""Initial values of newly created weights: Xavier for the body, small prediction heads at a class prior.

An SSD trained with hard-negative mining sees ``NEGATIVE_MINING_RATIO`` background anchors for every positive
one, so a freshly initialised class head is first pulled to "background with probability 3 / 4, each class
sharing the rest" before it learns anything about the image. Starting the class-head biases at that prior
skips that detour (RetinaNet's prior initialisation, applied to SSD's softmax). Xavier weights on the heads
would still give logits spread by several units (cross entropy 4-8 at the first batch), so the head weights
start small instead (RetinaNet: normal, sd 0.01). What both bought in the demo recipe is measured in
config/recipes/demo.yaml.
"""
import math

import mxnet as mx

from symbol import common, multibox

# Background share among the anchors the class loss sees: NEGATIVE_MINING_RATIO negatives per positive.
MINED_BACKGROUND_SHARE = multibox.NEGATIVE_MINING_RATIO / (multibox.NEGATIVE_MINING_RATIO + 1.0)


def background_bias(background_prior, num_classes):
    """The background logit that gives ``background_prior`` when every object logit is 0.

    softmax: ``p = e^b / (e^b + K)``, so ``b = log(p K / (1 - p))``. E.g. p = 0.75, K = 6: b = log 18 = 2.89.
    """
    if not 0 < background_prior < 1:
        raise ValueError('background_prior must be in (0, 1), got %r' % (background_prior,))
    return math.log(background_prior * num_classes / (1.0 - background_prior))


class SSDInitializer(mx.init.Xavier):
    """Xavier weights; prediction-head weights small; class-head biases at a background prior; other biases 0.

    Parameters
    ----------
    num_classes : int
        Object classes, background excluded.
    background_prior : float or None
        Initial background probability of every anchor (None or 0: all class-head biases 0).
    head_std : float or None
        Standard deviation of the normal initial weights of the box and class heads (None or 0: Xavier).
    **xavier_kwargs
        ``rnd_type``, ``factor_type``, ``magnitude`` of ``mx.init.Xavier``.

    Notes
    -----
    A class head's bias has ``A * (1 + num_classes)`` entries, anchor-major with background first
    (:func:`symbol.common.prediction_heads`), so entry ``a * (1 + num_classes)`` is anchor ``a``'s background.
    """

    def __init__(self, num_classes, background_prior=None, head_std=None, **xavier_kwargs):
        super().__init__(**xavier_kwargs)
        self.num_classes = num_classes
        self.background_prior = background_prior
        self.head_std = head_std

    def _init_weight(self, name, arr):
        if self.head_std and common.is_prediction_head_param(str(name)):
            mx.random.normal(0.0, self.head_std, shape=arr.shape, out=arr)
        else:
            super()._init_weight(name, arr)

    def _init_bias(self, name, arr):
        arr[:] = 0.0
        if self.background_prior and common.is_class_head_param(str(name)):
            values = arr.asnumpy().reshape(-1, self.num_classes + 1)
            values[:, multibox.BACKGROUND_ID] = background_bias(self.background_prior, self.num_classes)
            arr[:] = values.reshape(arr.shape)
