"""Training-step speed and peak memory: the project's train graph vs gluoncv's SSD of the same architecture.

Rows (row 3 of ``make bench``), each side in its own subprocess so that its peak RSS is its own, the sides
alternating, median images/s of ``--repeats`` runs, each run timing ``--steps`` steps after ``--warmup``:

1. ``vgg16_reduced`` at 300 vs gluoncv ``ssd_300_vgg16_atrous_voc``;
2. ``mobilenet`` (multiplier 1.0) at 512 vs gluoncv ``ssd_512_mobilenet1.0_voc``;
3. with ``--amp bf16``: the project's graph with bfloat16 convolutions (``amp.convert_symbol``, float32 master
   weights, losses and MultiBox operators in float32) against gluoncv's float32 step.

A step, both sides on the same random images (same seed), batch ``--batch-size``, SGD (lr 1e-3, momentum 0.9,
wd 5e-4), Xavier initialisation, ``mx.nd.waitall()`` at the end of every step:

- ours: ``Module.forward_backward`` + ``Module.update`` of ``symbol_factory.get_symbol_train`` (its graph
  matches anchors with ``MultiBoxTarget`` and decodes ``MultiBoxDetection`` inside the step);
- gluoncv: targets from ``SSDTargetGenerator`` (inside the timed step by default, as our graph does; outside
  with ``--peer-targets precomputed``, which favours gluoncv), then ``autograd.record`` forward +
  ``SSDMultiBoxLoss`` + backward + ``Trainer.step``; the network is hybridized (static_alloc, static_shape).

Usage: ``python bench/bench_train_step.py [--quick] [--amp bf16]``. Prints one table and writes
``bench/train_step_results.json``. ``--side ours|gluoncv`` runs one side in this process and prints one
JSON line (what the parent reads); ``--check-training`` trains ours on one fixed batch and prints the losses.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from config.runtime import configure_threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 20                 # Pascal VOC, as both gluoncv models
MAX_OBJECTS = 3                  # objects per random image: 1..MAX_OBJECTS
LABEL_WIDTH = 8                  # rows of our padded label (-1 after the objects)
SGD = dict(learning_rate=1e-3, momentum=0.9, wd=5e-4)
SEED = 7
TARGETS = {'float32': 1.0, 'bf16': 1.5}   # images/s ours / gluoncv float32
PAIRS = {                        # our (network, side) -> gluoncv model of the same architecture
    ('vgg16_reduced', 300): 'ssd_300_vgg16_atrous_voc',
    ('mobilenet', 512): 'ssd_512_mobilenet1.0_voc',
}
QUICK_PAIRS = {('mobilenet', 256): 'ssd_512_mobilenet1.0_voc'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='mobilenet at 256 only, batch 4, few steps: under two minutes')
    parser.add_argument('--amp', choices=('none', 'bf16'), default='none',
                        help='also measure our step with bfloat16 convolutions (default: float32 only)')
    parser.add_argument('--batch-size', type=int, default=None, help='images per step (default 8, 4 with --quick)')
    parser.add_argument('--steps', type=int, default=None, help='timed steps per run (default 10, 3 with --quick)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed steps first (default 3, 2 with --quick)')
    parser.add_argument('--repeats', type=int, default=None, help='runs per side (default 3, 1 with --quick)')
    parser.add_argument('--peer-targets', choices=('step', 'precomputed'), default='step',
                        help="gluoncv's anchor targets: computed in the timed step (default) or once before")
    parser.add_argument('--data-shape', type=int, default=None,
                        help="input side of every row (default: each pair's own; 256 with --side)")
    parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'train_step_results.json'),
                        help='results JSON')
    child = parser.add_argument_group('one side in this process (used by the parent run)')
    child.add_argument('--side', choices=('ours', 'gluoncv'), default=None, help='run one side, print JSON')
    child.add_argument('--network', default='mobilenet', help='our network (with --side ours)')
    child.add_argument('--peer-model', default='ssd_512_mobilenet1.0_voc', help='gluoncv model (--side gluoncv)')
    child.add_argument('--dtype', choices=('float32', 'bf16'), default='float32', help='our compute type')
    child.add_argument('--check-training', action='store_true',
                       help='train ours on one fixed batch for --steps steps and print the losses')
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (4 if args.quick else 8)
    args.steps = args.steps or (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 3)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if (args.side or args.check_training) and args.data_shape is None:
        args.data_shape = 256
    return args


# ------------------------------------------------------------------------------------------------ data
def random_batch(batch_size, data_shape, seed=SEED):
    """The same random images and boxes for both sides.

    Returns
    -------
    images : np.ndarray
        (B, 3, S, S) float32, roughly zero-mean unit-variance (what normalised images look like).
    boxes : np.ndarray
        (B, MAX_OBJECTS, 5) float32 [cls, xmin, ymin, xmax, ymax], normalised to [0, 1], rows of -1 after the
        1..MAX_OBJECTS objects of each image.
    """
    import numpy as np

    rng = np.random.RandomState(seed)
    images = rng.normal(0, 1, (batch_size, 3, data_shape, data_shape)).astype(np.float32)
    boxes = np.full((batch_size, MAX_OBJECTS, 5), -1, np.float32)
    for index in range(batch_size):
        for row in range(rng.randint(1, MAX_OBJECTS + 1)):
            corner = rng.uniform(0, 0.6, 2)
            size = rng.uniform(0.15, 0.4, 2)
            boxes[index, row] = [rng.randint(NUM_CLASSES), *corner, *(corner + size)]
    return images, boxes


def our_label(boxes):
    """(B, LABEL_WIDTH, 6) [cls, xmin, ymin, xmax, ymax, difficult=0], -1 padded, from :func:`random_batch`."""
    import numpy as np

    label = np.full((boxes.shape[0], LABEL_WIDTH, 6), -1, np.float32)
    label[:, :boxes.shape[1], :5] = boxes
    label[:, :boxes.shape[1], 5] = np.where(boxes[:, :, 0] >= 0, 0, -1)
    return label


# ------------------------------------------------------------------------------------------ our side
def our_module(network, data_shape, batch_size, dtype):
    """Our train graph bound for training, Xavier-initialised, SGD optimizer ready."""
    import mxnet as mx

    from symbol import symbol_factory
    from train import amp

    symbol = amp.convert_symbol(symbol_factory.get_symbol_train(network, data_shape, NUM_CLASSES),
                                'bf16' if dtype == 'bf16' else 'none')
    module = mx.mod.Module(symbol, data_names=('data',), label_names=('label',), context=mx.cpu())
    module.bind(data_shapes=[('data', (batch_size, 3, data_shape, data_shape))],
                label_shapes=[('label', (batch_size, LABEL_WIDTH, 6))], for_training=True)
    mx.random.seed(SEED)
    module.init_params(mx.init.Xavier(rnd_type='gaussian', factor_type='out', magnitude=2))
    module.init_optimizer(optimizer='sgd', optimizer_params=SGD)
    return module


def our_step_function(module, images, boxes):
    import mxnet as mx

    batch = mx.io.DataBatch(data=[mx.nd.array(images)], label=[mx.nd.array(our_label(boxes))])

    def step():
        module.forward_backward(batch)
        module.update()
        mx.nd.waitall()
    return step, batch


def our_losses(module):
    """(class cross-entropy over the anchors trained, localisation smooth-L1 per image) of the last forward."""
    import numpy as np

    from symbol import multibox

    outputs = module.get_outputs()
    positions = multibox.output_positions(module.symbol)
    prob = outputs[positions[multibox.CLS_PROB]].asnumpy().astype(np.float64)     # (B, C+1, A)
    target = outputs[positions[multibox.CLS_LABEL]].asnumpy().astype(np.int64)    # (B, A)
    loc = outputs[positions[multibox.LOC_LOSS]].asnumpy()                         # (B, A*4)
    batch_index, anchor_index = np.nonzero(target >= 0)
    picked = prob[batch_index, target[batch_index, anchor_index], anchor_index]
    return float(-np.log(np.maximum(picked, 1e-12)).mean()), float(loc.sum() / loc.shape[0])


# -------------------------------------------------------------------------------------- gluoncv side
def gluoncv_step_function(model_name, images, boxes, precompute_targets):
    """gluoncv's training step on ``images``: returns ``step()`` running target generation (unless
    precomputed), forward, SSDMultiBoxLoss, backward and the SGD update."""
    import mxnet as mx
    from gluoncv import model_zoo
    from gluoncv.loss import SSDMultiBoxLoss
    from gluoncv.model_zoo.ssd.target import SSDTargetGenerator
    from mxnet import autograd, gluon

    batch_size, _, height, width = images.shape
    net = model_zoo.get_model(model_name, pretrained=False, pretrained_base=False)
    mx.random.seed(SEED)
    net.collect_params('.*weight').initialize(mx.init.Xavier(rnd_type='gaussian', factor_type='out', magnitude=2))
    net.collect_params('^(?!.*weight$).*$').initialize()     # biases, BatchNorm, L2 scales: their own inits
    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, height, width)))
    net.hybridize(static_alloc=True, static_shape=True)
    data = mx.nd.array(images)
    scale = mx.nd.array([width, height, width, height]).reshape((1, 1, 4))
    gt_boxes = mx.nd.array(boxes[:, :, 1:]) * scale          # pixels, as gluoncv's transforms give
    gt_boxes = mx.nd.where(mx.nd.array(boxes[:, :, 1:]) < 0, -mx.nd.ones_like(gt_boxes), gt_boxes)
    gt_ids = mx.nd.array(boxes[:, :, :1])
    target_generator = SSDTargetGenerator(iou_thresh=0.5, stds=(0.1, 0.1, 0.2, 0.2), negative_mining_ratio=-1)
    loss_function = SSDMultiBoxLoss()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', SGD)

    def targets():
        cls_targets, box_targets, _ = target_generator(anchors, None, gt_boxes, gt_ids)
        return cls_targets, box_targets

    fixed = targets() if precompute_targets else None

    def step():
        cls_targets, box_targets = fixed or targets()
        with autograd.record():
            cls_preds, box_preds, _ = net(data)
            sum_loss, _, _ = loss_function(cls_preds, box_preds, cls_targets, box_targets)
            autograd.backward(sum_loss)
        trainer.step(1)
        mx.nd.waitall()
    return step


# ------------------------------------------------------------------------------------------ child run
def peak_rss_mb():
    """This process's resident-set high-water mark in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_steps(step, warmup, steps):
    """Seconds of each of ``steps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return seconds


def run_side(args):
    """One side in this process: a dict with images/s, step seconds and peak MB, or the error it hit."""
    import mxnet as mx

    images, boxes = random_batch(args.batch_size, args.data_shape)
    result = dict(side=args.side, dtype=args.dtype, data_shape=args.data_shape, batch_size=args.batch_size,
                  omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
                  model=args.network if args.side == 'ours' else args.peer_model)
    try:
        if args.side == 'ours':
            module = our_module(args.network, args.data_shape, args.batch_size, args.dtype)
            step = our_step_function(module, images, boxes)[0]
        else:
            step = gluoncv_step_function(args.peer_model, images, boxes, args.peer_targets == 'precomputed')
        seconds = time_steps(step, args.warmup, args.steps)
    except mx.base.MXNetError as error:
        result['error'] = first_error_line(str(error))
        return result
    result.update(img_s=args.batch_size * len(seconds) / sum(seconds), step_s=[round(s, 4) for s in seconds],
                  peak_mb=round(peak_rss_mb(), 1))
    return result


def first_error_line(message):
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else message


def check_training(args):
    """Train ours on one fixed batch; prints and returns the (class, localisation) loss of every step."""
    import mxnet as mx

    images, boxes = random_batch(args.batch_size, args.data_shape)
    module = our_module(args.network, args.data_shape, args.batch_size, args.dtype)
    batch = our_step_function(module, images, boxes)[1]
    losses = []
    try:
        for _ in range(args.steps):
            module.forward_backward(batch)
            losses.append(our_losses(module))
            module.update()
    except mx.base.MXNetError as error:
        print(json.dumps(dict(dtype=args.dtype, losses=losses, error=first_error_line(str(error)))))
        return losses
    print(json.dumps(dict(dtype=args.dtype, network=args.network, data_shape=args.data_shape,
                          losses=[[round(cross, 4), round(box, 4)] for cross, box in losses])))
    return losses


# -------------------------------------------------------------------------------------------- parent
def child_command(args, side, network, data_shape, peer_model, dtype):
    return [sys.executable, os.path.abspath(__file__), '--side', side, '--network', network,
            '--peer-model', peer_model, '--data-shape', str(data_shape), '--dtype', dtype,
            '--batch-size', str(args.batch_size), '--steps', str(args.steps), '--warmup', str(args.warmup),
            '--peer-targets', args.peer_targets]


def run_child(command):
    """Run one side; its JSON result (the last stdout line). A crash becomes ``{'error': ...}``."""
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    lines = [line for line in result.stdout.splitlines() if line.startswith('{')]
    if result.returncode != 0 or not lines:
        tail = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        return dict(error='exit %d: %s' % (result.returncode, tail[-1] if tail else 'no output'))
    return json.loads(lines[-1])


def measure_pair(args, network, data_shape, peer_model, progress, with_bf16):
    """Alternate the sides' subprocesses ``args.repeats`` times. Returns {(side, dtype): summary}."""
    sides = [('gluoncv', 'float32'), ('ours', 'float32')] + ([('ours', 'bf16')] if with_bf16 else [])
    runs = {key: [] for key in sides}
    for _ in range(args.repeats):
        for side, dtype in sides:
            if not (runs[(side, dtype)] and 'error' in runs[(side, dtype)][-1]):   # a failed side: not again
                runs[(side, dtype)].append(run_child(child_command(args, side, network, data_shape, peer_model,
                                                                   dtype)))
            progress.update(1)
    return {key: summarize(values) for key, values in runs.items()}


def summarize(results):
    """Median images/s and the largest peak of a side's runs, or the error of the first failed run."""
    failed = [r for r in results if 'error' in r]
    if failed:
        return dict(error=failed[0]['error'])
    return dict(img_s=statistics.median(r['img_s'] for r in results), peak_mb=max(r['peak_mb'] for r in results),
                runs_img_s=[round(r['img_s'], 3) for r in results])


def rows_of_pair(network, data_shape, peer_model, summaries, batch_size, bf16_not_applicable=None):
    """Table rows (one per side) and JSON rows (one per ratio) of one architecture; ``bf16_not_applicable``
    (why this CPU cannot run bfloat16) adds a bf16 row marked not applicable."""
    peer = summaries[('gluoncv', 'float32')]
    if bf16_not_applicable:
        summaries = {**summaries, ('ours', 'bf16'): dict(error=bf16_not_applicable, applicable=False)}
    table, ratios = [], []
    for (side, dtype), summary in summaries.items():
        name = peer_model if side == 'gluoncv' else '%s %d' % (network, data_shape)
        ratio = None
        if side == 'ours' and 'img_s' in summary and 'img_s' in peer:
            ratio = summary['img_s'] / peer['img_s']
        table.append(dict(network=name, side=side, dtype=dtype, ratio=ratio, **summary))
        if side == 'ours':
            applicable = summary.get('applicable', True)
            ratios.append(dict(
                name='train step %s %d %s vs %s float32, batch %d' % (network, data_shape, dtype, peer_model,
                                                                      batch_size),
                ours=rounded(summary.get('img_s')), peer=rounded(peer.get('img_s')),
                peer_name='gluoncv %s float32' % peer_model, ratio=rounded(ratio, 3), unit='img/s',
                target=TARGETS[dtype], met=(ratio is not None and ratio >= TARGETS[dtype]) if applicable else None,
                ours_peak_mb=summary.get('peak_mb'), peer_peak_mb=peer.get('peak_mb'),
                error=summary.get('error') or peer.get('error'), applicable=applicable))
    return table, ratios


def rounded(value, digits=2):
    return None if value is None else round(value, digits)


def print_table(table):
    header = '%-30s %-8s %-8s %9s %9s %7s' % ('network', 'side', 'dtype', 'img/s', 'peak MB', 'ratio')
    print(header)
    print('-' * len(header))
    for r in table:
        if 'error' in r:
            print('%-30s %-8s %-8s  %s: %s' % (r['network'], r['side'], r['dtype'], 'FAILED' if r.get(
                'applicable', True) else 'not applicable', r['error']))
            continue
        print('%-30s %-8s %-8s %9.2f %9.0f %7s' % (r['network'], r['side'], r['dtype'], r['img_s'], r['peak_mb'],
                                                  '' if r['ratio'] is None else '%.2f' % r['ratio']))


def main(args):
    if args.side:
        print(json.dumps(run_side(args)))
        return
    if args.check_training:
        check_training(args)
        return
    from tqdm import tqdm

    from core.atomic import write_json

    pairs = QUICK_PAIRS if args.quick else PAIRS
    if args.data_shape:
        pairs = {(network, args.data_shape): peer for (network, _), peer in pairs.items()}
    from train import amp

    bf16_not_applicable = amp.bf16_unavailable_reason() if args.amp == 'bf16' else None
    runs_per_pair = args.repeats * (3 if args.amp == 'bf16' and not bf16_not_applicable else 2)
    load_before = os.getloadavg()
    table, rows = [], []
    with tqdm(total=len(pairs) * runs_per_pair, unit='run', desc='train step') as progress:
        for (network, data_shape), peer_model in pairs.items():
            summaries = measure_pair(args, network, data_shape, peer_model, progress,
                                     args.amp == 'bf16' and not bf16_not_applicable)
            pair_table, pair_rows = rows_of_pair(network, data_shape, peer_model, summaries, args.batch_size,
                                                 bf16_not_applicable)
            table += pair_table
            rows += pair_rows
    print_table(table)
    from report import machine_description  # bench/report.py: this script's folder

    machine = dict(machine_description(), load_average_start=[round(v, 2) for v in load_before])
    print('load average before / after: %s / %s; OMP_NUM_THREADS=%s; gluoncv targets: %s'
          % (machine['load_average_start'], machine['load_average'], os.environ.get('OMP_NUM_THREADS'),
             'in the step' if args.peer_targets == 'step' else 'precomputed (outside the step)'))
    result = dict(machine=machine, quick=args.quick, batch_size=args.batch_size, steps=args.steps,
                  warmup=args.warmup, repeats=args.repeats, peer_targets=args.peer_targets, table=table, rows=rows)
    print('wrote %s' % write_json(args.out, result, indent=2))


if __name__ == '__main__':
    configure_threads()
    main(parse_args())
