"""--balance repeat-factor (dataset/balance.py) and --validate-on-train (train/data_check.py): repeat factors
against the LVIS formula worked by hand, the balanced record file the trainer reads, and the warning a data bug
raises after epoch 1."""
import os

import numpy as np
import pytest

from config.errors import UserError
from dataset import balance
from dataset.recordio import read_record_labels
from tests.test_distributed import repeated_records
from tests.test_train import make_dataset, tiny_run
from tools.im2rec import pack_records


def classes_of(*lists):
    return [np.array(classes, np.int64) for classes in lists]


def test_repeat_factors_follow_the_lvis_formula():
    images = classes_of([0], [0], [0], [0], [0], [0], [0], [0], [0], [0, 1])      # class 1 in 1 of 10 images
    assert balance.class_image_fractions(images, 2).tolist() == [1.0, 0.1]
    assert balance.repeat_factors(images, 2, 0.4).tolist() == [1.0] * 9 + [2.0]   # sqrt(0.4 / 0.1) = 2
    assert balance.repeat_factors(images, 2, 0.9).tolist() == [1.0] * 9 + [3.0]   # sqrt(0.9 / 0.1) = 3
    assert balance.repeat_factors(classes_of([], [1]), 2, 0.25).tolist() == [1.0, 1.0]   # no objects: once
    counts = balance.repeat_counts(np.full(20000, 2.25), seed=3)
    assert set(counts.tolist()) == {2, 3} and abs(counts.mean() - 2.25) < 0.02   # stochastic rounding
    assert balance.repeat_counts(np.array([1.0, 2.0, 3.0]), seed=0).tolist() == [1, 2, 3]


def test_a_label_reads_its_classes():
    flat = np.array([2, 6, 1, .1, .1, .2, .2, 0, 1, .3, .3, .4, .4, 0, 4, .5, .5, .6, .6, 1, -1, -1, -1, -1, -1, -1],
                    np.float32)
    assert balance.label_classes(flat).tolist() == [1, 4]


@pytest.fixture(scope='module')
def rare_set(tmp_path_factory):
    """40 images whose objects are all class 0 except images 0 and 1, all class 1 (5 % of the images)."""
    root = tmp_path_factory.mktemp('rare')
    make_dataset(root, 40, 2)
    lines = []
    with open(root / 'train.lst') as handle:
        for number, line in enumerate(handle):
            fields = line.rstrip('\n').split('\t')
            values = [float(value) for value in fields[3:-1]]
            for row in range(0, len(values), 6):
                values[row] = 1.0 if number < 2 else 0.0
            lines.append('\t'.join(fields[:3] + ['%g' % value for value in values] + fields[-1:]))
    (root / 'rare.lst').write_text('\n'.join(lines) + '\n')
    (root / 'rare.classes').write_text('common\nrare\n')
    pack_records(str(root / 'rare.lst'), str(root / 'VOC'), progress=False, num_thread=1)
    return str(root / 'rare.rec')


def test_the_balanced_file_repeats_the_rare_images(rare_set, tmp_path):
    lines = []
    path = balance.balanced_records(rare_set, str(tmp_path / 'ssd-balanced'), 0.45, 0, log=lines.append)
    original = [flat for _, flat in read_record_labels(rare_set)]
    copied = list(read_record_labels(path))
    assert len(copied) == 38 + 2 * 3                                     # sqrt(0.45 / 0.05) = 3 for the rare ones
    assert [record_id for record_id, _ in copied] == list(range(44))     # new ids, one each
    expected = [original[0]] * 3 + [original[1]] * 3 + original[2:]
    assert all(np.array_equal(got, want) for (_, got), want in zip(copied, expected))
    assert lines[1].split()[:4] == ['common', '38', '->', '38'] and lines[2].split()[:4] == ['rare', '2', '->', '6']
    assert open(tmp_path / 'ssd-balanced.classes').read() == 'common\nrare\n'
    stamp = os.path.getmtime(path)
    balance.balanced_records(rare_set, str(tmp_path / 'ssd-balanced'), 0.45, 0, log=lines.append)
    assert os.path.getmtime(path) == stamp                               # same inputs: reused, not rewritten


def test_training_reads_the_balanced_records(rare_set, tmp_path):
    result = tiny_run(rare_set, tmp_path / 'ssd', batch_size=4, balance='repeat-factor', balance_threshold=0.45)
    assert result['iterations_per_epoch'] == 44 // 4 and os.path.isfile(tmp_path / 'ssd-balanced.rec')
    with pytest.raises(UserError, match='cannot be used with --train-list'):
        tiny_run(rare_set, tmp_path / 'other', balance='repeat-factor', train_list=rare_set[:-4] + '.lst')
    with pytest.raises(UserError, match=r"^--balance \(data.balance\) 'lvis': choose one of none, repeat-factor$"):
        tiny_run(rare_set, tmp_path / 'other', balance='lvis')


def shuffled_labels(root, name, source_lst, seed=0):
    """``root/name.rec``: the images of ``source_lst`` with the labels of other images (a data bug)."""
    with open(source_lst) as handle:
        rows = [line.rstrip('\n').split('\t') for line in handle if line.strip()]
    order = np.random.RandomState(seed).permutation(len(rows))
    order = np.where(order == np.arange(len(rows)), np.roll(order, 1), order)
    lst = os.path.join(root, name + '.lst')
    with open(lst, 'w') as handle:
        for index, (row, other) in enumerate(zip(rows, order)):
            handle.write('\t'.join([str(index)] + rows[other][1:-1] + row[-1:]) + '\n')
    with open(os.path.join(root, name + '.classes'), 'w') as handle:
        handle.write(open(source_lst[:-4] + '.classes').read())
    pack_records(lst, os.path.join(root, 'VOC'), progress=False, num_thread=1)
    return lst[:-4] + '.rec'


def test_validate_on_train_warns_when_labels_do_not_match_the_images(tmp_path):
    # good: 8 images, 12 copies each: one epoch learns them. bad: 96 images, each with another image's labels
    make_dataset(tmp_path, 96, 2)
    good = repeated_records(str(tmp_path / 'good'), str(tmp_path / 'train.lst'), str(tmp_path / 'VOC'), 8, 12)
    bad = shuffled_labels(str(tmp_path), 'shuffled', str(tmp_path / 'train.lst'))
    logs = {}
    for name, path in (('good', good), ('bad', bad)):
        log = tmp_path / (name + '.log')
        tiny_run(path, tmp_path / name / 'ssd', lr=0.05, validate_on_train=1, log=str(log))
        logs[name] = log.read_text()
    checks = {name: [line for line in log.splitlines() if 'training-data check' in line] for name, log in logs.items()}
    assert [len(lines) for lines in checks.values()] == [1, 1] and all('(the loss fell: ' in lines[0]
                                                                       for lines in checks.values()), checks
    scores = {name: float(lines[0].split('VOC07 mAP ')[1].split()[0]) for name, lines in checks.items()}
    assert scores['good'] >= 0.01 and 'labels may not match the images' not in logs['good'], scores
    assert scores['bad'] < 0.01 and 'labels may not match the images' in logs['bad'], scores
