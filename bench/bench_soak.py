"""Soak check: many epochs of a tiny training run, the process's memory after every epoch; no leak.

A hook records the resident set size (``VmRSS``) and the peak so far (``VmHWM``) at the end of every epoch of
``train_net`` (tiny mobilenet0.25 at 64 px, 40 synthetic images, validation every epoch, checkpoints every
epoch). The row is the growth of the RSS from epoch 5 (allocator pools and oneDNN's primitive cache are warm
by then) to the last epoch; target under 2 %.

    python bench/bench_soak.py --out bench/soak_results.json [--epochs 32] [--quick]
"""
import argparse
import os
import sys
import tempfile

from config.runtime import configure_threads

FULL = dict(epochs=32)
QUICK = dict(epochs=12)
FROM_EPOCH = 5                # growth is measured from the end of this epoch
TARGET_PERCENT = 2.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='results JSON')
    parser.add_argument('--quick', action='store_true', help='%d epochs' % QUICK['epochs'])
    parser.add_argument('--epochs', type=int, default=None, help='epochs (default %d)' % FULL['epochs'])
    parser.add_argument('--work-dir', default=None, help='scratch folder (default: a temporary one)')
    return parser.parse_args(argv)


def memory_kib(field, status='/proc/self/status'):
    """``VmRSS`` / ``VmHWM`` of this process in KiB (0 where /proc is missing)."""
    try:
        with open(status) as handle:
            for line in handle:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def make_data(folder):
    """40 training and 16 validation synthetic images packed into ``folder``."""
    from tools import prepare_dataset, synthetic_voc
    voc = os.path.join(folder, 'VOC')
    synthetic_voc.main(synthetic_voc.parse_args(['--root', voc, '--num-trainval', '40', '--num-test', '16',
                                                 '--min-side', '64', '--max-side', '96', '--max-objects', '4',
                                                 '--num-thread', '1']))
    for image_set, name in (('trainval', 'train'), ('test', 'val')):
        prepare_dataset.main(prepare_dataset.parse_args([
            '--dataset', 'pascal', '--year', '2007', '--set', image_set, '--root', voc,
            '--target', os.path.join(folder, name + '.lst'), '--num-thread', '1']))
    return os.path.join(folder, 'train.rec'), os.path.join(folder, 'val.rec')


def soak(folder, epochs):
    """Per epoch ``{'epoch', 'rss_kib', 'peak_kib'}`` of a tiny run of ``epochs`` epochs."""
    from train.callbacks import Hook
    from train.train_net import train_net

    class MemoryLog(Hook):
        def __init__(self):
            self.records = []

        def after_epoch(self, state):
            self.records.append({'epoch': state.epoch + 1, 'rss_kib': memory_kib('VmRSS'),
                                 'peak_kib': memory_kib('VmHWM')})

    train_rec, val_rec = make_data(folder)
    log = MemoryLog()
    train_net(train_path=train_rec, val_path=val_rec, network='mobilenet0.25', data_shape=64, batch_size=8,
              pretrained='', end_epoch=epochs, lr=0.01, lr_steps=(), log='', seed=0, train_preset='ssd_train',
              frequent=1000, prefix=os.path.join(folder, 'model', 'soak'), cpu=True, hooks=[log])
    return log.records


def growth_row(records):
    """The report row: RSS growth from epoch FROM_EPOCH to the last, in percent."""
    start = next(record for record in records if record['epoch'] == FROM_EPOCH)
    last = records[-1]
    percent = 100.0 * (last['rss_kib'] - start['rss_kib']) / max(start['rss_kib'], 1)
    highest = max(record['rss_kib'] for record in records if record['epoch'] >= FROM_EPOCH)
    return dict(max_growth_percent=round(100.0 * (highest - start['rss_kib']) / max(start['rss_kib'], 1), 2),
                name='RSS growth, epoch %d -> %d of a tiny run (%%)' % (FROM_EPOCH, last['epoch']),
                ours=round(percent, 2), peer=None, ratio=None, target_note='< %g %%' % TARGET_PERCENT,
                met=bool(percent < TARGET_PERCENT), higher_is_better=False,
                rss_mib=[round(record['rss_kib'] / 1024.0, 1) for record in records],
                peak_mib=[round(record['peak_kib'] / 1024.0, 1) for record in records])


def main(args):
    configure_threads()
    from core.atomic import write_json
    epochs = args.epochs or (QUICK if args.quick else FULL)['epochs']
    if epochs <= FROM_EPOCH:
        print('--epochs must be more than %d' % FROM_EPOCH, file=sys.stderr)
        return 2
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work_dir) as folder:
        records = soak(folder, epochs)
    row = growth_row(records)
    write_json(args.out, {'rows': [row], 'epochs': records}, indent=1)
    print('RSS per epoch (MiB): %s' % ' '.join('%.1f' % value for value in row['rss_mib']))
    print('%s: %.2f (target %s, %s); the highest epoch-end RSS after epoch %d was %.2f %% above it'
          % (row['name'], row['ours'], row['target_note'], 'met' if row['met'] else 'MISSED', FROM_EPOCH,
             row['max_growth_percent']))
    return 0


if __name__ == '__main__':
    sys.exit(main(parse_args()))
