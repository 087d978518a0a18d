"""The torchvision peer of the time-to-accuracy benchmark: SSDlite320-MobileNetV3-Large trained from scratch.

Run by the python of a separate venv that has torch and torchvision (bench/torch_peer.py makes it); this file
imports nothing from the project and no MXNet. The parsing and writing helpers import no torch either, so that
the project's tests can load them.

Usage::

    python bench/ssdlite_peer.py --voc-dir DIR/VOC2007 --out-dir OUT --marks 3,6,9,12 \\
        [--threads 2 --batch-size 16 --lr 0.02 --warmup-iters 200 --seed 0]

Data. Classes from ``VOC2007/classes.txt`` (model labels 1..C, 0 is the background), images of
``ImageSets/Main/trainval.txt`` for training and of ``test.txt`` for the detections.

Boxes. VOC pixel coordinates are 1-based and inclusive; like the project's reader (dataset/pascal_voc.py) we
subtract 1 from all four values, clip them into ``[0, W] x [0, H]`` and drop boxes left without width or
height. The model is trained on, and predicts, boxes in that convention, and the detections are divided by the
image width and height: the same normalization as the project's ground truth, ``(x - 1) / W``.

Training. SGD (lr 0.02, momentum 0.9, weight decay 4e-5), the learning rate ramped linearly from 0.001x over
the first ``--warmup-iters`` iterations and then constant; batches of 16 shuffled images, a horizontal flip with
probability 0.5 the only augmentation; everything else is the model's default (its 320x320 resize and
normalization, score threshold, detections per image).

Clock. Only training counts: the wall time of the training loop, data loading included. Each time that time
passes a mark (minutes), the clock stops, every test image is predicted, ``OUT/detections-<mark>min.json`` is
written (:func:`detection_record`) and training goes on; after the last mark the run ends with
``OUT/progress.json`` (:func:`write_json`), which also lists the detection files by mark. The loader's worker
stays alive across epochs and predictions (``persistent_workers``), so while the clock is stopped it may decode
the next batch or two ahead (its usual prefetch), as it would during any training step.
"""
import argparse
import json
import math
import os
import random
import sys
import time
import xml.etree.ElementTree as ET

CLASSES_FILE = 'classes.txt'               # inside VOC<year>/, one class name per line
TRAIN_SPLIT, TEST_SPLIT = 'trainval', 'test'
WARMUP_START = 0.001                       # the warm-up's first learning rate, as a fraction of --lr
MOMENTUM = 0.9
WEIGHT_DECAY = 4e-5
FLIP_PROBABILITY = 0.5
LOADER_WORKERS = 1                         # training DataLoader processes
PRINT_EVERY = 20                           # iterations between progress lines
PROGRESS_FILE = 'progress.json'


# ------------------------------------------------------------------------------------------- reading
def read_words(path):
    """The first word of every non-empty line of a text file, e.g. image ids or class names."""
    with open(path, encoding='utf-8') as handle:
        return [line.split()[0] for line in handle if line.strip()]


def read_classes(voc_dir):
    """Class names from ``<voc_dir>/classes.txt``, in label order (class index 0 first)."""
    names = [line.strip() for line in open(os.path.join(voc_dir, CLASSES_FILE), encoding='utf-8') if line.strip()]
    if not names or len(set(names)) != len(names):
        raise ValueError('%s must list distinct class names, one per line' % os.path.join(voc_dir, CLASSES_FILE))
    return names


def read_image_set(voc_dir, split):
    """Image ids of ``<voc_dir>/ImageSets/Main/<split>.txt``."""
    return read_words(os.path.join(voc_dir, 'ImageSets', 'Main', split + '.txt'))


def _number(parent, tag, xml_path):
    text = (parent.findtext(tag) or '').strip()
    if not text:
        raise ValueError('annotation %s: <%s> inside <%s> is missing or empty' % (xml_path, tag, parent.tag))
    return float(text)


def parse_annotation(xml_path, classes):
    """One VOC XML file -> image size and torchvision-style targets in 0-based pixel coordinates.

    Parameters
    ----------
    xml_path : str
    classes : sequence of str
        Class names; names in the XML are matched stripped and lower-cased, as the project's reader does, and
        objects of other classes are left out.

    Returns
    -------
    dict
        ``width``, ``height`` : int, from ``<size>``;
        ``boxes`` : list of N ``[xmin, ymin, xmax, ymax]`` floats, the VOC values minus 1, clipped into
        ``[0, width] x [0, height]``; boxes without width or height after that are dropped;
        ``labels`` : list of N int, class index + 1 (0 is the background);
        ``difficult`` : list of N int, 0 or 1.
    """
    lookup = {name.strip().lower(): index for index, name in enumerate(classes)}
    root = ET.parse(xml_path).getroot()
    size = root.find('size')
    if size is None:
        raise ValueError('annotation %s has no <size>' % xml_path)
    width, height = int(_number(size, 'width', xml_path)), int(_number(size, 'height', xml_path))
    target = dict(width=width, height=height, boxes=[], labels=[], difficult=[])
    for element in root.findall('object'):
        name = (element.findtext('name') or '').strip().lower()
        bndbox = element.find('bndbox')
        if name not in lookup or bndbox is None:
            continue
        x0, y0, x1, y1 = (_number(bndbox, tag, xml_path) - 1.0 for tag in ('xmin', 'ymin', 'xmax', 'ymax'))
        box = [min(max(x0, 0.0), width), min(max(y0, 0.0), height),
               min(max(x1, 0.0), width), min(max(y1, 0.0), height)]
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        target['boxes'].append(box)
        target['labels'].append(lookup[name] + 1)
        target['difficult'].append(int(float((element.findtext('difficult') or '0').strip() or 0)))
    return target


def image_path(voc_dir, image_id):
    return os.path.join(voc_dir, 'JPEGImages', image_id + '.jpg')


def annotation_path(voc_dir, image_id):
    return os.path.join(voc_dir, 'Annotations', image_id + '.xml')


# ------------------------------------------------------------------------------------------- writing
def detections_filename(mark):
    """``'detections-3min.json'`` for mark 3, ``'detections-0.5min.json'`` for 0.5."""
    return 'detections-%gmin.json' % mark


def normalized_detections(boxes, scores, labels, width, height):
    """The model's detections of one image as rows for the project's metric.

    Parameters
    ----------
    boxes : (D, 4) nested list of float
        ``[xmin, ymin, xmax, ymax]`` in pixels of the original image (0-based).
    scores : (D,) list of float
    labels : (D,) list of int
        Model labels 1..C.
    width, height : int
        The original image's size.

    Returns
    -------
    (D, 6) nested list
        ``[class index (label - 1), score, xmin / W, ymin / H, xmax / W, ymax / H]``, rounded to 6 decimals.
    """
    scale = (width, height, width, height)
    return [[int(label) - 1, round(float(score), 6)] + [round(float(v) / s, 6) for v, s in zip(box, scale)]
            for box, score, label in zip(boxes, scores, labels)]


def detection_record(mark, clock, classes, detections):
    """The content of one ``detections-<mark>min.json``.

    Parameters
    ----------
    mark : float
        Minutes of training the file belongs to.
    clock : dict
        ``training_seconds``, ``iterations``, ``images_seen`` at the moment the mark was passed.
    classes : list of str
    detections : dict
        ``{image id: (D, 6) rows}`` from :func:`normalized_detections`, every test image.
    """
    seconds = clock['training_seconds']
    return dict(mark_minutes=mark, training_seconds=round(seconds, 3), iterations=clock['iterations'],
                images_seen=clock['images_seen'],
                train_images_per_second=round(clock['images_seen'] / seconds, 3) if seconds > 0 else None,
                classes=list(classes), split=TEST_SPLIT,
                row_format='[class index, score, xmin, ymin, xmax, ymax], boxes normalized by image width/height',
                detections=detections)


def write_json(path, value):
    """Write ``value`` as JSON to a temporary name, then rename it into place."""
    temp = '%s.tmp%d' % (path, os.getpid())
    with open(temp, 'w', encoding='utf-8') as handle:
        json.dump(value, handle)
    os.replace(temp, path)


def warmup_factor(iteration, warmup_iters):
    """Learning-rate multiplier at ``iteration`` (0-based): linear from 0.001 to 1 over ``warmup_iters``."""
    if iteration >= warmup_iters:
        return 1.0
    return WARMUP_START + (1.0 - WARMUP_START) * iteration / warmup_iters


# ----------------------------------------------------------------------------------------- torch parts
class VOCDetectionSet:
    """Map-style dataset of ``(image (3, H, W) float in [0, 1], target)`` for torchvision's detectors.

    Parameters
    ----------
    voc_dir : str
    image_ids : list of str
    classes : list of str
    flip : bool
        Flip each image (and its boxes) horizontally with probability 0.5, drawn from torch's generator.
    """

    def __init__(self, voc_dir, image_ids, classes, flip):
        self.voc_dir, self.image_ids, self.flip = voc_dir, list(image_ids), flip
        self.targets = [parse_annotation(annotation_path(voc_dir, i), classes) for i in self.image_ids]

    def __len__(self):
        return len(self.image_ids)

    def __getitem__(self, index):
        import torch
        from torchvision.io import ImageReadMode, read_image
        image = read_image(image_path(self.voc_dir, self.image_ids[index]), ImageReadMode.RGB)
        image = image.float().div_(255.0)                                     # (3, H, W)
        parsed = self.targets[index]
        boxes = torch.tensor(parsed['boxes'], dtype=torch.float32).reshape(-1, 4)    # (N, 4)
        if self.flip and torch.rand(()) < FLIP_PROBABILITY:
            image = image.flip(-1)
            width = image.shape[-1]
            boxes = torch.stack([width - 1 - boxes[:, 2], boxes[:, 1], width - 1 - boxes[:, 0], boxes[:, 3]], 1)
        boxes = boxes.clamp(min=0)                 # 0-based pixel indices mirror as x -> W - 1 - x
        labels = torch.tensor(parsed['labels'], dtype=torch.int64)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # a box clipped at W can flip to nothing
        return image, dict(boxes=boxes[keep], labels=labels[keep])


def collate(batch):
    """A list of ``(image, target)`` -> ``(list of images, list of targets)``."""
    return tuple(zip(*batch))


def build_model(num_classes):
    """SSDlite320-MobileNetV3-Large with random weights and ``num_classes + 1`` outputs (0 is the background)."""
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large
    return ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes + 1)


def train_loader(voc_dir, classes, batch_size, seed):
    """Shuffled, flipped training batches of the trainval split, loaded by one worker process."""
    import torch
    dataset = VOCDetectionSet(voc_dir, read_image_set(voc_dir, TRAIN_SPLIT), classes, flip=True)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=LOADER_WORKERS,
                                       collate_fn=collate, persistent_workers=True, drop_last=False,
                                       generator=torch.Generator().manual_seed(seed))


def predict(model, test_set, batch_size):
    """Detections of every test image: ``{image id: (D, 6) rows}`` (:func:`normalized_detections`)."""
    import torch
    model.eval()
    detections = {}
    with torch.no_grad():
        for start in range(0, len(test_set), batch_size):
            indices = range(start, min(start + batch_size, len(test_set)))
            images = [test_set[index][0] for index in indices]
            for index, image, output in zip(indices, images, model(images)):
                detections[test_set.image_ids[index]] = normalized_detections(
                    output['boxes'].tolist(), output['scores'].tolist(), output['labels'].tolist(),
                    image.shape[-1], image.shape[-2])
    model.train()
    return detections


class Trainer:
    """The training loop with its stoppable clock, progress lines and mark files.

    Parameters
    ----------
    args : argparse.Namespace
        From :func:`parse_args`.
    """

    def __init__(self, args):
        import torch
        self.args = args
        self.classes = read_classes(args.voc_dir)
        self.model = build_model(len(self.classes))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=args.lr, momentum=MOMENTUM,
                                         weight_decay=WEIGHT_DECAY)
        self.loader = train_loader(args.voc_dir, self.classes, args.batch_size, args.seed)
        self.test_set = VOCDetectionSet(args.voc_dir, read_image_set(args.voc_dir, TEST_SPLIT), self.classes,
                                        flip=False)
        self.clock = dict(training_seconds=0.0, iterations=0, images_seen=0)
        self.history, self.mark_files = [], []
        self.window = (0.0, 0)              # training seconds and images seen at the last progress line

    def step(self, images, targets):
        """One SGD step on a batch; returns the summed loss."""
        for group in self.optimizer.param_groups:
            group['lr'] = self.args.lr * warmup_factor(self.clock['iterations'], self.args.warmup_iters)
        losses = self.model(list(images), list(targets))
        loss = sum(losses.values())
        if not math.isfinite(loss.item()):
            raise FloatingPointError('loss is %s at iteration %d (%s); lower --lr'
                                     % (loss.item(), self.clock['iterations'],
                                        {name: value.item() for name, value in losses.items()}))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.clock['iterations'] += 1
        self.clock['images_seen'] += len(images)
        return loss.item()

    def report(self, loss):
        """Print one progress line and keep it for progress.json."""
        seconds, seen = self.clock['training_seconds'], self.clock['images_seen']
        rate = (seen - self.window[1]) / max(seconds - self.window[0], 1e-9)
        self.window = (seconds, seen)
        line = dict(iteration=self.clock['iterations'], loss=round(loss, 4), images_per_second=round(rate, 2),
                    training_seconds=round(seconds, 1), lr=self.optimizer.param_groups[0]['lr'])
        self.history.append(line)
        print('iter %(iteration)d  loss %(loss).4f  %(images_per_second).2f img/s  lr %(lr).5f  '
              'train %(training_seconds).1f s' % line, flush=True)

    def write_mark(self, mark):
        """Predict the test split and write ``detections-<mark>min.json`` (the clock is stopped meanwhile)."""
        started = time.perf_counter()
        record = detection_record(mark, self.clock, self.classes,
                                  predict(self.model, self.test_set, self.args.batch_size))
        path = os.path.join(self.args.out_dir, detections_filename(mark))
        write_json(path, record)
        self.mark_files.append(dict(mark_minutes=mark, path=path, **{k: record[k] for k in (
            'training_seconds', 'iterations', 'images_seen', 'train_images_per_second')}))
        print('mark %g min: %d iterations, %.1f training s, %.2f img/s; wrote %s (predicting took %.1f s)'
              % (mark, record['iterations'], record['training_seconds'], record['train_images_per_second'] or 0,
                 path, time.perf_counter() - started), flush=True)

    def run(self, marks):
        """Train until the clock has passed every mark (minutes, ascending), writing each mark's file."""
        pending = sorted(marks)
        self.model.train()
        started = time.perf_counter()
        while pending:
            for images, targets in self.loader:
                loss = self.step(images, targets)
                self.clock['training_seconds'] += time.perf_counter() - started
                if self.clock['iterations'] % PRINT_EVERY == 0:
                    self.report(loss)
                while pending and self.clock['training_seconds'] >= 60.0 * pending[0]:
                    self.write_mark(pending.pop(0))
                if not pending:
                    break
                started = time.perf_counter()

    def progress(self):
        """The content of progress.json."""
        return dict(args=vars(self.args), classes=self.classes, marks=self.mark_files, history=self.history,
                    **self.clock)


# -------------------------------------------------------------------------------------------------- CLI
def comma_floats(text):
    """``'3,6,9'`` -> ``[3.0, 6.0, 9.0]``."""
    values = [float(part) for part in text.split(',') if part.strip()]
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError('give positive minutes separated by commas, e.g. 3,6,9,12')
    return values


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--voc-dir', required=True, help='the VOC<year> folder, e.g. DIR/VOCdevkit/VOC2007')
    parser.add_argument('--out-dir', required=True, help='where the detection files and progress.json go')
    parser.add_argument('--marks', type=comma_floats, required=True, help='training minutes, e.g. 3,6,9,12')
    parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    parser.add_argument('--batch-size', type=int, default=16, help='training and prediction batch size')
    parser.add_argument('--lr', type=float, default=0.02, help='SGD learning rate after the warm-up')
    parser.add_argument('--warmup-iters', type=int, default=200, help='iterations of linear warm-up')
    parser.add_argument('--seed', type=int, default=0, help='seeds python, torch and the shuffle')
    return parser.parse_args(argv)


def main(args):
    import torch
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    print('torch %s, %d threads, %s' % (torch.__version__, torch.get_num_threads(), args.voc_dir), flush=True)
    trainer = Trainer(args)
    trainer.run(args.marks)
    write_json(os.path.join(args.out_dir, PROGRESS_FILE), trainer.progress())
    return 0


if __name__ == '__main__':
    sys.exit(main(parse_args()))
