"""Overfit check: the train graph of a small MobileNet learns two synthetic images, and the deploy graph,
given the trained parameters, finds every box with the right class as its top-scored detections."""
import cv2
import mxnet as mx
import numpy as np
import pytest

from symbol import multibox, symbol_factory

NETWORK = 'mobilenet0.25'
SIDE = 128
STEPS = 100                                 # Adam steps; the losses are near zero after about 60
CLASSES = ('square', 'disc')
# per image: (class, xmin, ymin, xmax, ymax), normalized
OBJECTS = [
    [(0, .10, .15, .45, .55), (1, .55, .50, .90, .90)],
    [(1, .20, .20, .70, .75), (0, .65, .10, .90, .35)],
]
LABEL_WIDTH = 3                             # one -1 padding row per image at least


def draw_image(objects):
    """(SIDE, SIDE, 3) uint8 RGB: grey background, a red square or green disc filling each box."""
    image = np.full((SIDE, SIDE, 3), 100, np.uint8)
    for cls, *box in objects:
        xmin, ymin, xmax, ymax = [value * SIDE for value in box]
        if CLASSES[cls] == 'square':
            cv2.rectangle(image, (round(xmin), round(ymin)), (round(xmax) - 1, round(ymax) - 1), (230, 40, 40), -1)
        else:
            centre, axes = ((xmin + xmax) / 2, (ymin + ymax) / 2), (xmax - xmin, ymax - ymin)
            cv2.ellipse(image, (centre, axes, 0), (40, 200, 60), -1)
    return image


def make_batch():
    """data (2, 3, SIDE, SIDE) float32 standardized, label (2, LABEL_WIDTH, 6) -1 padded."""
    images = np.stack([draw_image(objects) for objects in OBJECTS]).astype(np.float32)
    data = ((images - 127.0) / 58.0).transpose(0, 3, 1, 2)
    label = np.full((len(OBJECTS), LABEL_WIDTH, 6), -1, np.float32)
    for image, objects in enumerate(OBJECTS):
        for row, obj in enumerate(objects):
            label[image, row] = list(obj) + [0]
    return data, label


def mean_losses(outputs, positions):
    """Cross-entropy of the anchors with a class target and smooth-L1 per positive anchor."""
    prob = outputs[positions[multibox.CLS_PROB]].asnumpy()              # (B, 1 + classes, A)
    target = outputs[positions[multibox.CLS_LABEL]].asnumpy()           # (B, A), -1 ignored
    chosen = np.take_along_axis(prob, np.maximum(target, 0).astype(int)[:, None], axis=1)[:, 0]
    cross_entropy = -np.log(chosen[target >= 0] + 1e-12).mean()
    loc = outputs[positions[multibox.LOC_LOSS]].asnumpy().sum() / max((target > 0).sum(), 1)
    return cross_entropy, loc


def train(data, label):
    """Train the train graph STEPS times on the one batch; returns (arg_params, aux_params, first, last)
    where first / last are the (cross-entropy, localization) losses of the first and last steps."""
    mx.random.seed(0)
    np.random.seed(0)
    symbol = symbol_factory.get_symbol_train(NETWORK, SIDE, len(CLASSES))
    module = mx.mod.Module(symbol, data_names=('data',), label_names=('label',), context=mx.cpu())
    module.bind(data_shapes=[('data', data.shape)], label_shapes=[('label', label.shape)])
    module.init_params(mx.init.Xavier(rnd_type='gaussian', factor_type='out', magnitude=2))
    module.init_optimizer(optimizer='adam', optimizer_params={'learning_rate': 0.01})
    batch = mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(label)])
    positions = multibox.output_positions(symbol)
    losses = []
    for _ in range(STEPS):
        module.forward(batch, is_train=True)
        module.backward()
        module.update()
        losses.append(mean_losses(module.get_outputs(), positions))
    arg_params, aux_params = module.get_params()
    return arg_params, aux_params, losses[0], losses[-1]


def detect(data, arg_params, aux_params):
    """The deploy graph's (B, A, 6) detections with the trained parameters."""
    module = mx.mod.Module(symbol_factory.get_symbol(NETWORK, SIDE, len(CLASSES)), data_names=('data',),
                           label_names=None, context=mx.cpu())
    module.bind(data_shapes=[('data', data.shape)], for_training=False)
    module.set_params(arg_params, aux_params)     # raises if a deploy parameter is missing
    module.forward(mx.io.DataBatch([mx.nd.array(data)]), is_train=False)
    return module.get_outputs()[0].asnumpy()


def iou(box, other):
    """Intersection over union of two [xmin, ymin, xmax, ymax] boxes."""
    width = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    height = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    inter = width * height
    return inter / ((box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1]) - inter)


@pytest.mark.slow
def test_small_mobilenet_overfits_two_images_and_the_deploy_graph_finds_their_boxes():
    data, label = make_batch()
    arg_params, aux_params, first, last = train(data, label)
    assert last[0] < first[0] / 100 and last[1] < first[1] / 10, (first, last)
    detections = detect(data, arg_params, aux_params)
    for image, objects in enumerate(OBJECTS):
        kept = detections[image][detections[image][:, 0] >= 0]
        top = kept[np.argsort(-kept[:, 1])][:len(objects)]           # as many top-scored rows as objects
        for cls, *box in objects:
            overlaps = [iou(row[2:], box) for row in top]
            best = top[int(np.argmax(overlaps))]
            assert max(overlaps) > 0.5 and best[0] == cls, (image, box, top)
