"""train/initializer.py: class-head biases start at the background prior, everything else as Xavier / zero."""
import math

import mxnet as mx
import numpy as np

from symbol import common, multibox, symbol_factory
from train.initializer import MINED_BACKGROUND_SHARE, SSDInitializer, background_bias

NUM_CLASSES, SHAPE, BATCH = 3, 64, 2


def initialised_module(background_prior, head_std=None):
    symbol = symbol_factory.get_symbol_train('mobilenet0.25', SHAPE, NUM_CLASSES)
    module = mx.mod.Module(symbol, data_names=('data',), label_names=('label',), context=mx.cpu())
    module.bind(data_shapes=[('data', (BATCH, 3, SHAPE, SHAPE))], label_shapes=[('label', (BATCH, 2, 6))])
    module.init_params(SSDInitializer(NUM_CLASSES, background_prior, head_std, rnd_type='gaussian',
                                      factor_type='out', magnitude=2))
    return module


def test_background_bias_by_hand():
    assert MINED_BACKGROUND_SHARE == 0.75                           # 3 mined negatives per positive
    assert math.isclose(background_bias(0.75, 6), math.log(18))    # e^b / (e^b + 6) = 18 / 24
    assert math.isclose(background_bias(0.5, 1), 0.0)


def test_class_head_biases_start_at_the_prior_and_the_rest_at_zero():
    args, _ = initialised_module(0.75).get_params()
    class_biases = [name for name in args if common.is_class_head_param(name) and name.endswith('_bias')]
    assert len(class_biases) == 6                                    # one per feature layer
    for name, value in args.items():
        value = value.asnumpy()
        if name in class_biases:
            rows = value.reshape(-1, NUM_CLASSES + 1)                # anchor-major, background first
            np.testing.assert_allclose(rows[:, 0], math.log(0.75 * 3 / 0.25), rtol=1e-6)   # log 9
            assert np.all(rows[:, 1:] == 0)
        elif name.endswith('_bias'):
            assert np.all(value == 0), name
        elif name.endswith('_weight') and value.ndim == 4:
            assert value.std() > 0, name                              # Xavier, not zero


def test_with_zero_head_weights_every_anchor_says_background_at_the_prior():
    module = initialised_module(0.75)
    args, auxs = module.get_params()
    for name in args:
        if (common.CLS_HEAD in name or common.LOC_HEAD in name) and name.endswith('_weight'):
            args[name] = mx.nd.zeros_like(args[name])
    module.set_params(args, auxs)
    label = -np.ones((BATCH, 2, 6), np.float32)
    label[:, 0] = [0, 0.1, 0.1, 0.5, 0.5, 0]
    batch = mx.io.DataBatch([mx.nd.random.uniform(-1, 1, (BATCH, 3, SHAPE, SHAPE))], [mx.nd.array(label)])
    module.forward(batch, is_train=False)
    positions = multibox.output_positions(module.symbol)
    cls_prob = module.get_outputs()[positions[multibox.CLS_PROB]].asnumpy()   # (B, 1 + K, A)
    np.testing.assert_allclose(cls_prob[:, 0], 0.75, rtol=1e-5)               # 9 / (9 + 3)
    np.testing.assert_allclose(cls_prob[:, 1:], 0.25 / 3, rtol=1e-5)


def test_head_std_sets_the_spread_of_the_head_weights_only():
    small, _ = initialised_module(0.75, head_std=0.01).get_params()
    xavier, _ = initialised_module(0.75).get_params()
    heads = [name for name in small if common.is_prediction_head_param(name) and name.endswith('_weight')]
    assert len(heads) == 12                                           # box and class head per feature layer
    for name in heads:
        assert abs(small[name].asnumpy().std() - 0.01) < 0.002, name    # >= 1152 samples each
        assert xavier[name].asnumpy().std() > 0.03, name
    # the rest keeps Xavier's spread: sd sqrt(2 / fan_out) for conv0, 8 filters of 3x3 -> 0.167
    assert abs(small['conv0_weight'].asnumpy().std() - math.sqrt(2 / 72)) < 0.03


def test_no_prior_leaves_every_bias_at_zero():
    args, _ = initialised_module(None).get_params()
    assert all(np.all(value.asnumpy() == 0) for name, value in args.items() if name.endswith('_bias'))
