"""SSD graphs: anchor counts, output names and shapes of every network, settings and their errors, and the
box coding (hand-computed offsets and an encode/decode round trip). Shapes only: no big network is bound."""
import math

import mxnet as mx
import numpy as np
import pytest

from config.errors import UserError
from symbol import common, mobilenet, multibox, symbol_factory

NUM_CLASSES = 3

# Anchors of every network at one input side, computed by hand: sum over feature layers of side^2 times
# anchors per position (4 with ratios (1, 2, .5), 6 with (1, 2, .5, 3, 1/3)).
# Strides 16 and 32 then extras of stride 2 / pad 1 at 256: sides 16, 8, 4, 2, 1, 1.
MOBILENET_256 = 16 * 16 * 4 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 6 + 1 * 6 + 1 * 6            # 1540
RESNET_256 = 16 * 16 * 4 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 6 + 1 * 4 + 1 * 4               # 1536
EXPECTED_ANCHORS = {
    # sides 38, 19, 10, 5, 3, 1
    ('vgg16_reduced', 300): 38 * 38 * 4 + 19 * 19 * 6 + 10 * 10 * 6 + 5 * 5 * 6 + 3 * 3 * 4 + 1 * 4,
    # sides 64, 32, 16, 8, 4, 2, 2 (the example's last extra layer has stride 1)
    ('vgg16_reduced', 512): (64 * 64 * 4 + 32 * 32 * 6 + 16 * 16 * 6 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 4
                             + 2 * 2 * 4),
    # sides 32, 16, 8, 4, 2, 1
    ('resnet50', 512): 32 * 32 * 4 + 16 * 16 * 6 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 4 + 1 * 4,
    ('resnet101', 512): 32 * 32 * 4 + 16 * 16 * 6 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 4 + 1 * 4,
    ('resnet50', 256): RESNET_256,
    ('resnet101', 256): RESNET_256,
    ('mobilenet', 512): 32 * 32 * 4 + 16 * 16 * 6 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 6 + 1 * 6,
    ('resnet50_preact', 256): RESNET_256,
    ('resnet101_preact', 256): RESNET_256,
    # unpadded stem and reductions: mixed_7 17x17, mixed_10 8x8 at 300, then extras 4, 2, 1, 1
    ('inceptionv3', 300): 17 * 17 * 4 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 6 + 1 * 4 + 1 * 4,
}
TESTED_SIDE = {'vgg16_reduced': 300, 'inceptionv3': 300}   # networks not tested at 256 (the others are)
for _name in ('mobilenet', 'mobilenet1.0', 'mobilenet0.75', 'mobilenet0.5', 'mobilenet0.25', 'mobilenetv2',
              'mobilenetv2_1.0', 'mobilenetv2_0.75', 'mobilenetv2_0.5', 'mobilenetv2_0.25'):
    EXPECTED_ANCHORS[(_name, 256)] = MOBILENET_256


def shape_of_every_network():
    """(network, data_shape) pairs: every listed network at one side it supports."""
    return [(network, TESTED_SIDE.get(network, 256)) for network in symbol_factory.list_networks()]


def train_output_shapes(network, data_shape, batch_size, num_objects=4):
    """Output name -> shape of the train graph for a (batch_size, 3, S, S) batch."""
    symbol = symbol_factory.get_symbol_train(network, data_shape, NUM_CLASSES)
    _, shapes, _ = symbol.infer_shape(data=(batch_size, 3, data_shape, data_shape),
                                      label=(batch_size, num_objects, 6))
    return dict(zip(symbol.list_outputs(), shapes))


def deploy_output_shape(network, data_shape, batch_size, **overrides):
    """Shape of the deploy graph's only output."""
    symbol = symbol_factory.get_symbol(network, data_shape, NUM_CLASSES, **overrides)
    _, shapes, _ = symbol.infer_shape(data=(batch_size, 3, data_shape, data_shape))
    return shapes[0]


def test_ssd300_has_the_papers_anchor_count_and_ssd512_the_examples():
    assert deploy_output_shape('vgg16_reduced', 300, 1) == (1, 8732, 6)
    assert deploy_output_shape('vgg16_reduced', 512, 1) == (1, 24576, 6)    # the paper's 24564 + 12
    assert EXPECTED_ANCHORS[('vgg16_reduced', 300)] == 8732
    assert EXPECTED_ANCHORS[('vgg16_reduced', 512)] == 24576


@pytest.mark.parametrize('network,data_shape', shape_of_every_network() + [
    ('resnet50', 512), ('resnet101', 512), ('mobilenet', 512), ('vgg16_reduced', 512)])
@pytest.mark.parametrize('batch_size', [1, 3])
def test_output_shapes_of_every_network(network, data_shape, batch_size):
    anchors = EXPECTED_ANCHORS[(network, data_shape)]
    shapes = train_output_shapes(network, data_shape, batch_size)
    assert shapes == {
        multibox.output_key(multibox.CLS_PROB): (batch_size, NUM_CLASSES + 1, anchors),
        multibox.output_key(multibox.LOC_LOSS): (batch_size, anchors * 4),
        multibox.output_key(multibox.CLS_LABEL): (batch_size, anchors),
        multibox.output_key(multibox.DETECTION): (batch_size, anchors, 6),
    }
    assert deploy_output_shape(network, data_shape, batch_size) == (batch_size, anchors, 6)


def test_every_listed_network_is_covered_by_the_shape_test():
    assert sorted(network for network, _ in shape_of_every_network()) == symbol_factory.list_networks()
    assert {'vgg16_reduced', 'resnet50', 'resnet101', 'mobilenet', 'mobilenet1.0', 'mobilenet0.5',
            'mobilenet0.25'} <= set(symbol_factory.list_networks())


def test_output_names_are_the_ones_training_reads():
    train = symbol_factory.get_symbol_train('mobilenet0.25', 128, NUM_CLASSES)
    deploy = symbol_factory.get_symbol('mobilenet0.25', 128, NUM_CLASSES)
    assert train.list_outputs() == ['cls_prob_output', 'loc_loss_output', 'cls_label_output', 'detection_output']
    assert multibox.output_positions(train) == {'cls_prob': 0, 'loc_loss': 1, 'cls_label': 2, 'detection': 3}
    assert [multibox.output_key(name) for name in multibox.TRAIN_OUTPUTS] == train.list_outputs()
    assert deploy.list_outputs() == ['detection_output'] == [multibox.output_key(multibox.DETECTION)]
    assert 'label' in train.list_arguments() and 'label' not in deploy.list_arguments()


def test_deploy_graph_takes_every_parameter_from_the_train_graph():
    train = symbol_factory.get_symbol_train('vgg16_reduced', 300, NUM_CLASSES)
    deploy = symbol_factory.get_symbol('vgg16_reduced', 300, NUM_CLASSES)
    train_args, _, train_aux = train.infer_shape(data=(2, 3, 300, 300), label=(2, 4, 6))
    deploy_args, _, deploy_aux = deploy.infer_shape(data=(2, 3, 300, 300))
    train_shapes = dict(zip(train.list_arguments() + train.list_auxiliary_states(), train_args + train_aux))
    deploy_shapes = dict(zip(deploy.list_arguments() + deploy.list_auxiliary_states(), deploy_args + deploy_aux))
    assert set(train_shapes) - set(deploy_shapes) == {'label'}
    assert all(train_shapes[name] == shape for name, shape in deploy_shapes.items())


def test_vgg16_reduced_parameters_match_the_mxnet_example_names():
    symbol = symbol_factory.get_symbol('vgg16_reduced', 300, NUM_CLASSES)
    shapes = dict(zip(symbol.list_arguments(), symbol.infer_shape(data=(1, 3, 300, 300))[0]))
    assert shapes['conv1_1_weight'] == (64, 3, 3, 3)
    assert shapes['conv5_3_weight'] == (512, 512, 3, 3)
    assert shapes['fc6_weight'] == (1024, 512, 3, 3) and shapes['fc7_weight'] == (1024, 1024, 1, 1)
    # L2 normalization on relu4_3 only, its scale starting at 20 with a reduced weight decay
    assert shapes['relu4_3_scale'] == (1, 512, 1, 1)
    assert [name for name in shapes if name.endswith('_scale')] == ['relu4_3_scale']
    attrs = symbol.attr_dict()['relu4_3_scale']
    assert attrs['__init__'] == '["constant", {"value": 20}]' and float(attrs['__wd_mult__']) == 0.1
    # class heads: 4 anchors x (1 + 3 classes) on relu4_3
    assert shapes['relu4_3_cls_pred_conv_weight'] == (16, 512, 3, 3)
    assert common.is_class_head_param('relu4_3_cls_pred_conv_weight')
    assert not common.is_class_head_param('relu4_3_loc_pred_conv_weight')


def test_graph_nodes_carry_the_settings_of_multibox():
    symbol = symbol_factory.get_symbol_train('vgg16_reduced', 300, NUM_CLASSES, nms_thresh=0.3,
                                             force_suppress=True, nms_topk=50)
    attrs = symbol.attr_dict()
    target = attrs['multibox_target']
    assert target['variances'] == '(0.1, 0.1, 0.2, 0.2)' == str(multibox.VARIANCES)
    assert (float(target['overlap_threshold']), float(target['negative_mining_ratio']),
            float(target['negative_mining_thresh']), float(target['ignore_label'])) == (0.5, 3, 0.5, -1)
    detection = attrs['detection_raw']
    assert detection['variances'] == str(multibox.VARIANCES)
    assert (float(detection['nms_threshold']), detection['force_suppress'], int(detection['nms_topk'])) == (
        0.3, 'True', 50)
    assert attrs['cls_prob']['normalization'] == 'valid' and attrs['cls_prob']['multi_output'] == 'True'
    assert attrs['loc_loss']['normalization'] == 'valid'
    # steps of SSD300 in pixels, divided by the input side: 8 / 300 on relu4_3, 300 / 300 on the last layer
    assert attrs['relu4_3_anchors']['steps'] == str((8 / 300, 8 / 300))
    assert attrs['multi_feat_5_conv_3x3_relu_anchors']['steps'] == '(1.0, 1.0)'
    default = symbol_factory.get_symbol('mobilenet', 256, NUM_CLASSES).attr_dict()['detection']
    assert (float(default['nms_threshold']), default['force_suppress'], int(default['nms_topk'])) == (
        0.45, 'False', 400)


@pytest.mark.parametrize('network,data_shape,words', [
    ('vgg17', 300, ['vgg17', 'mobilenet0.25', 'resnet101', 'vgg16_reduced']),
    ('vgg16_reduced', 320, ['320', '300, 512']),
    ('mobilenet', 300, ['300', 'multiple of 32']),
    ('resnet50', 32, ['32', 'multiple of 32 from 64']),
    ('mobilenet', '256', ['one integer']),
])
def test_unknown_network_or_data_shape_is_a_one_line_error(network, data_shape, words):
    with pytest.raises(UserError) as error:
        symbol_factory.get_symbol_train(network, data_shape, NUM_CLASSES)
    message = str(error.value)
    assert '\n' not in message
    assert all(word in message for word in words), message


def test_overrides_reach_the_config_and_the_graph():
    config = symbol_factory.get_config('mobilenet', 256, multiplier=0.5, ratios=((1,),) * 6, steps=None)
    assert config['backbone_kwargs'] == {'multiplier': 0.5, 'use_global_stats': False}
    assert config['ratios'] == ((1,),) * 6 and config['data_shape'] == 256
    assert symbol_factory.get_config('mobilenet', 256)['backbone_kwargs']['multiplier'] == 1.0  # table intact
    symbol = symbol_factory.get_symbol('mobilenet', 256, NUM_CLASSES, multiplier=0.5, ratios=((1,),) * 6)
    shapes = dict(zip(symbol.list_arguments(), symbol.infer_shape(data=(1, 3, 256, 256))[0]))
    assert shapes['conv0_weight'] == (16, 3, 3, 3)     # int(32 * 0.5) filters
    frozen = symbol_factory.get_symbol('resnet50', 256, NUM_CLASSES, use_global_stats=True).attr_dict()
    assert frozen['stem_bn']['use_global_stats'] == 'True'
    assert shapes['relu26_cls_pred_conv_weight'] == (2 * (NUM_CLASSES + 1), 512, 3, 3)   # 2 sizes, 1 ratio
    # 2 anchors per position on sides 16, 8, 4, 2, 1, 1
    assert symbol.infer_shape(data=(1, 3, 256, 256))[1][0] == (1, 2 * (256 + 64 + 16 + 4 + 1 + 1), 6)


@pytest.mark.parametrize('overrides,words', [
    (dict(multiplyer=0.5), ['multiplyer', 'multiplier', 'sizes']),
    (dict(multiplier=0.3), ['0.3', '0.25']),
    (dict(sizes=((.1, .2),) * 5), ['sizes has 5 entries', '6 feature layers']),
    (dict(extra_pads=(1, 1, 1)), ['equal lengths']),
    (dict(normalizations=-1), ['normalizations must be a list']),
    (dict(from_layers=('relu22', 'relu99')), ['relu99', 'relu10, relu22, relu26']),
])
def test_bad_overrides_are_one_line_errors(overrides, words):
    with pytest.raises(UserError) as error:
        symbol_factory.get_symbol('mobilenet', 256, NUM_CLASSES, **overrides)
    assert '\n' not in str(error.value) and all(word in str(error.value) for word in words), str(error.value)


def test_extra_layers_that_would_be_empty_are_a_user_error():
    # strides 2, 2, 2, 2 with pads 1, 1, 0, 0 at 300: sides 19 -> 10 -> 5 -> 2 -> 0
    with pytest.raises(UserError, match="feature layer 'multi_feat_5_conv_3x3_relu' would be empty"):
        symbol_factory.get_symbol('vgg16_reduced', 300, NUM_CLASSES, extra_strides=(2, 2, 2, 2))


@pytest.mark.parametrize('settings,words', [
    (dict(num_classes=0), 'num_classes'), (dict(nms_thresh=1.5), 'nms_thresh'), (dict(nms_topk=0), 'nms_topk'),
])
def test_bad_detection_settings_are_user_errors(settings, words):
    arguments = dict(dict(num_classes=NUM_CLASSES), **settings)
    with pytest.raises(UserError, match=words):
        symbol_factory.get_symbol_train('mobilenet0.25', 128, **arguments)


def test_mobilenet_parameters_map_one_to_one_onto_gluoncv():
    from gluoncv.model_zoo.mobilenet import get_mobilenet
    theirs = get_mobilenet(0.25)
    theirs.initialize()
    theirs(mx.nd.zeros((1, 3, 64, 64)))
    their_shapes = {param.name[len(theirs.prefix):]: param.shape for param in theirs.collect_params().values()}
    data = mx.sym.Variable('data')
    features = mobilenet.feature_layers(data, multiplier=0.25)['relu26']
    args, _, aux = features.infer_shape(data=(1, 3, 64, 64))
    our_shapes = dict(zip(features.list_arguments() + features.list_auxiliary_states(), args + aux))
    del our_shapes['data']
    names = mobilenet.gluoncv_name_map(0.25)
    assert set(names) == set(our_shapes)
    assert set(names.values()) == set(their_shapes) - {'dense0_weight', 'dense0_bias'}
    assert all(our_shapes[ours] == their_shapes[theirs_name] for ours, theirs_name in names.items())
    assert names['bn5_moving_var'] == 'batchnorm5_running_var'


def evaluate(outputs, **inputs):
    """Run a small symbol (or group) on NumPy inputs; returns a list of NumPy outputs."""
    arrays = {name: mx.nd.array(value) for name, value in inputs.items()}
    return [output.asnumpy() for output in outputs.eval(ctx=mx.cpu(), **arrays)]


def encode(anchor_boxes, labels, num_classes, **target_settings):
    """multibox.targets on NumPy arrays: (1, A, 4) anchors, (B, N, 6) labels -> loc_target, mask, cls_target."""
    cls_preds = np.zeros((labels.shape[0], num_classes + 1, anchor_boxes.shape[1]), np.float32)
    symbols = multibox.targets(mx.sym.Variable('anchors'), mx.sym.Variable('label'), mx.sym.Variable('cls'),
                               **target_settings)
    return evaluate(mx.sym.Group(list(symbols)), anchors=anchor_boxes, label=labels, cls=cls_preds)


def test_targets_encode_offsets_divided_by_the_variances():
    anchor = np.array([[[0.4, 0.4, 0.6, 0.6]]], np.float32)                 # centre (0.5, 0.5), side 0.2
    labels = np.array([[[2, 0.37, 0.39, 0.67, 0.69, 0]]], np.float32)       # centre (0.52, 0.54), side 0.3
    loc_target, loc_mask, cls_target = encode(anchor, labels, NUM_CLASSES)
    expected = [0.02 / 0.2 / 0.1, 0.04 / 0.2 / 0.1, math.log(0.3 / 0.2) / 0.2, math.log(0.3 / 0.2) / 0.2]
    np.testing.assert_allclose(loc_target[0], expected, rtol=1e-4)          # 1.0, 2.0, 2.027, 2.027
    np.testing.assert_array_equal(loc_mask[0], [1, 1, 1, 1])
    np.testing.assert_array_equal(cls_target[0], [3])                        # class 2 + background


def test_anchor_overlap_threshold_decides_which_anchors_are_positives():
    # one box (0.2, 0.2, 0.6, 0.6), area 0.16; anchors of the same width, cut at the bottom: IoU 1, 0.45, 0.3
    anchors = np.array([[[0.2, 0.2, 0.6, 0.6], [0.2, 0.2, 0.6, 0.38], [0.2, 0.2, 0.6, 0.32]]], np.float32)
    labels = np.array([[[1, 0.2, 0.2, 0.6, 0.6, 0]]], np.float32)
    expected = {0.5: [2, 0, 0], 0.4: [2, 2, 0], 0.25: [2, 2, 2]}   # class 1 + background; 0: mined negative
    for threshold, targets in expected.items():
        np.testing.assert_array_equal(encode(anchors, labels, NUM_CLASSES, overlap_threshold=threshold)[2][0],
                                      targets)
    attrs = symbol_factory.get_symbol_train('mobilenet0.25', 128, NUM_CLASSES, overlap_threshold=0.4).attr_dict()
    assert float(attrs['multibox_target']['overlap_threshold']) == 0.4
    with pytest.raises(UserError, match='overlap_threshold'):
        symbol_factory.get_symbol_train('mobilenet0.25', 128, NUM_CLASSES, overlap_threshold=0.0)


def random_labels(rng, counts, num_classes, width=4):
    """(B, width, 6) labels, -1 padded: image b has counts[b] boxes, each inside its own quadrant."""
    labels = np.full((len(counts), width, 6), -1, np.float32)
    for image, count in enumerate(counts):
        for index, (left, top) in enumerate([(0, 0), (0.5, 0), (0, 0.5), (0.5, 0.5)][:count]):
            box_w, box_h = rng.uniform(0.12, 0.45, size=2)
            xmin, ymin = left + rng.uniform(0, 0.5 - box_w), top + rng.uniform(0, 0.5 - box_h)
            labels[image, index] = [rng.integers(num_classes), xmin, ymin, xmin + box_w, ymin + box_h, 0]
    return labels


def test_targets_then_detection_decoding_give_the_boxes_back():
    rng = np.random.default_rng(7)
    labels = random_labels(rng, counts=[4, 2, 3], num_classes=NUM_CLASSES)
    anchor_boxes = evaluate(multibox.anchors(mx.sym.Variable('feature'), sizes=(0.2, 0.35), ratios=(1, 2, .5)),
                            feature=np.zeros((1, 1, 10, 10), np.float32))[0]          # (1, 400, 4)
    loc_target, _, cls_target = encode(anchor_boxes, labels, NUM_CLASSES)
    one_hot = np.eye(NUM_CLASSES + 1, dtype=np.float32)[np.maximum(cls_target, 0).astype(int)]
    cls_prob = one_hot.transpose(0, 2, 1)                                            # (B, 1 + classes, A)
    decoded = multibox.detections(mx.sym.Variable('cls_prob'), mx.sym.Variable('loc'), mx.sym.Variable('anchors'),
                                  nms_thresh=0.5, force_suppress=False, nms_topk=-1)
    detections = evaluate(decoded, cls_prob=cls_prob, loc=loc_target, anchors=anchor_boxes)[0]
    for image in range(labels.shape[0]):
        found = detections[image][detections[image][:, 0] >= 0]
        truth = labels[image][labels[image][:, 0] >= 0]
        assert len(found) == len(truth)                       # several anchors per box, NMS keeps one
        found = found[np.argsort(found[:, 2])]
        truth = truth[np.argsort(truth[:, 1])]
        np.testing.assert_array_equal(found[:, 0], truth[:, 0])
        np.testing.assert_array_equal(found[:, 1], 1.0)
        np.testing.assert_allclose(found[:, 2:], truth[:, 1:5], atol=1e-3)
