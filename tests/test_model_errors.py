"""Bad model input and bad numbers: each is one line naming the file or flag and what to do, exit status 2,
no traceback (run through the scripts' own ``run_cli``, as a user's command line is).

The data and record cases are in tests/test_bad_data.py; a NaN loss stopping with the last good checkpoint
named is tests/test_train.py's ``test_non_finite_loss_stops_with_the_last_good_checkpoint``.
"""
import os
import shutil

import pytest

from config.errors import run_cli
from tests.test_train import BATCH, NETWORK, SHAPE, make_dataset, tiny_run
from tools.scripts import load_script


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One epoch of the tiny network, its data and prefix."""
    root = tmp_path_factory.mktemp('model_errors')
    train_rec, val_rec = make_dataset(root, 16, 8)
    prefix = str(root / 'run')
    tiny_run(train_rec, prefix)
    return train_rec, val_rec, prefix


def train_flags(trained, prefix=None):
    return ['--cpu', '--train-path', trained[0], '--val-path', '', '--network', NETWORK, '--data-shape', str(SHAPE),
            '--batch-size', str(BATCH), '--pretrained', '', '--log', '', '--train-preset', 'val', '--prefix',
            prefix or trained[2], '--end-epoch', '2']


def corrupt_copy(trained, tmp_path):
    """A copy of the checkpoint whose .params is garbage."""
    prefix = str(tmp_path / 'corrupt')
    for suffix in ('-symbol.json', '-0001.params', '-0001.states', '-config.yaml', '.classes'):
        shutil.copy(trained[2] + suffix, prefix + suffix)
    with open(prefix + '-0001.params', 'wb') as handle:
        handle.write(b'not an ndarray file' * 10)
    return prefix


def other_backbone(trained, tmp_path):
    """A pretrained checkpoint of another backbone (resnet50) for --network mobilenet0.25."""
    import mxnet as mx

    from core.checkpoint import save_params
    from symbol import symbol_factory
    symbol = symbol_factory.get_symbol('resnet50', 64, 6)
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=(1, 3, 64, 64))
    args = {name: mx.nd.zeros(shape) for name, shape in zip(symbol.list_arguments(), arg_shapes) if name != 'data'}
    aux = {name: mx.nd.ones(shape) for name, shape in zip(symbol.list_auxiliary_states(), aux_shapes)}
    prefix = str(tmp_path / 'resnet')
    save_params(prefix + '-0001.params', args, aux)
    return prefix


CASES = [   # (id, script, argv builder, words of the one line)
    ('resume an epoch that does not exist', 'train.py',
     lambda trained, tmp: train_flags(trained) + ['--resume', '5'],
     ['--resume', '-0005.params does not exist', 'epochs saved under this prefix: 1']),
    ('finetune an epoch that does not exist', 'train.py',
     lambda trained, tmp: train_flags(trained) + ['--finetune', '7', '--end-epoch', '9'],
     ['--finetune', '-0007.params does not exist', 'epochs saved under this prefix: 1']),
    ('pretrained epoch that does not exist', 'train.py',
     lambda trained, tmp: train_flags(trained, str(tmp / 'new'))[:-2] + ['--end-epoch', '1', '--pretrained',
                                                                           trained[2], '--epoch', '9'],
     ['--pretrained', '-0009.params (an MXNet checkpoint at --epoch 9; its epochs: 1)', "--pretrained ''"]),
    ('evaluate an epoch that does not exist', 'evaluate.py',
     lambda trained, tmp: ['--cpu', '--rec-path', trained[1], '--prefix', trained[2], '--epoch', '4'],
     ['-0004.params does not exist', 'epochs saved under this prefix: 1']),
    ('pretrained file of another backbone', 'train.py',
     lambda trained, tmp: train_flags(trained, str(tmp / 'new'))[:-2] + ['--end-epoch', '1', '--pretrained',
                                                                           other_backbone(trained, tmp)],
     ['--pretrained', ': only ', ' of its ', 'arrays match --network mobilenet0.25', 'its backbone fits --network',
      'resnet50']),
    ('more classes asked for than the data has', 'train.py',
     lambda trained, tmp: train_flags(trained, str(tmp / 'new')) + ['--num-class', '20'],
     ['class count mismatch: network --num-class 20, data 6 classes']),
    ('evaluate with a class count the checkpoint was not trained for', 'evaluate.py',
     lambda trained, tmp: ['--cpu', '--rec-path', trained[1], '--prefix', trained[2], '--epoch', '1',
                           '--num-class', '3'],
     ['class count mismatch', '--num-class 3', '6 classes']),
    ('corrupt .params on resume', 'train.py',
     lambda trained, tmp: train_flags(trained, corrupt_copy(trained, tmp)) + ['--resume', '1'],
     ['--resume', '-0001.params is not an MXNet parameter file']),
    ('corrupt .params in evaluate', 'evaluate.py',
     lambda trained, tmp: ['--cpu', '--rec-path', trained[1], '--prefix', corrupt_copy(trained, tmp), '--epoch', '1'],
     ['-0001.params is not an MXNet parameter file']),
    ('resume last without any checkpoint', 'train.py',
     lambda trained, tmp: train_flags(trained, str(tmp / 'empty')) + ['--resume', 'last'],
     ['--resume last: no complete checkpoint under --prefix', '--resume auto']),
    ('resume with a value that is no epoch', 'train.py',
     lambda trained, tmp: train_flags(trained) + ['--resume', 'latest'],
     ["--resume 'latest': give an epoch number, 'last' or 'auto'"]),
    ('a learning rate that explodes in the first epoch', 'train.py',
     lambda trained, tmp: train_flags(trained, str(tmp / 'boom')) + ['--lr', '1e30'],
     ['loss is not finite at epoch 1 batch', 'Last good checkpoint: none was written yet', 'Lower --lr']),
]


@pytest.mark.parametrize('case', CASES, ids=[case[0] for case in CASES])
def test_bad_model_input_is_one_line(case, trained, tmp_path, capsys):
    _, script_name, argv, words = case
    script = load_script(script_name)
    with pytest.raises(SystemExit) as stop:
        run_cli(script.main, script.parse_args(argv(trained, tmp_path)))
    err = capsys.readouterr().err
    line = err[err.index('error: '):].rstrip('\n') if 'error: ' in err else err
    assert stop.value.code == 2 and 'Traceback' not in err and '\n' not in line, err[-3000:]
    for word in words:
        assert word in line, (word, line)
    assert not [name for name in os.listdir(str(tmp_path)) if '.tmp-' in name]
