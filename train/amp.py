"""Mixed-precision training of the SSD train graph: ``train.py --amp bf16`` (CPU) and ``--amp fp16`` (GPU).

The graph is rewritten with ``mxnet.contrib.amp.convert_symbol``:

- convolutions (and, for fp16, MXNet's other float16 operators) compute in the low precision type; ``amp_cast``
  nodes convert their inputs;
- the parameters stay float32 (the master weights the optimizer updates; their gradients come back through the
  casts in float32), so checkpoints are ordinary float32 files of the ordinary train graph;
- anchors, matching and decoding (the MultiBox operators), the losses (SoftmaxOutput, smooth L1, MakeLoss) and
  the L2 normalisation of vgg16_reduced's conv4_3 stay float32.

bfloat16 has float32's exponent range, so it needs no loss scaling. float16 does: MXNet offers dynamic loss
scaling only to Gluon Trainers, so the Module graph gets a static one: the losses' gradients are multiplied by
``loss_scale`` inside the graph (their ``grad_scale``) and the optimizer divides by it (``rescale_grad``).

Where the precision cannot run, :func:`check_supported` raises one-line errors: fp16 needs GPU contexts (MXNet
1.9.1 has no CPU float16 GEMM: 'FP16 gemm on cpu not implemented'); bf16 needs CPU contexts and oneDNN
bfloat16 kernels, which exist on CPUs with AVX-512 (fast with AVX512_BF16 or AMX; emulated, and slower than
float32, with plain AVX-512). A tiny bfloat16 convolution is run once to find out.
"""
import contextlib
import functools
import json
import logging
import os
import sys

import mxnet as mx

from config.errors import UserError
from config.runtime import cpu_model_and_flags
from config.schema import AMP_MODES as MODES
from symbol.common import graph_nodes

LOG = logging.getLogger('train')

TARGET_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16'}
# Kept float32 beyond MXNet's own lists (which already hold softmax, Flatten, Reshape, ...).
EXTRA_FP32_OPS = ['SoftmaxOutput', 'smooth_l1', 'MakeLoss', 'L2Normalization']
# convert_symbol accepts only operators of its own lists, so the MultiBox nodes are excluded by name instead:
# their inputs are cast to float32.
FLOAT32_NODE_OPS = ('_contrib_MultiBoxPrior', '_contrib_MultiBoxTarget', '_contrib_MultiBoxDetection')
LOSS_OPS = ('SoftmaxOutput', 'MakeLoss')      # the train graph's loss heads: their grad_scale carries the scale
BF16_OPS = ['Convolution']                    # MXNet 1.9.1's bfloat16 list is Convolution and FullyConnected
FAST_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


def convert_symbol(symbol, mode):
    """``symbol`` with low-precision convolutions and float32 master weights.

    Parameters
    ----------
    symbol : mx.sym.Symbol
        The float32 train (or deploy) graph.
    mode : str
        One of :data:`MODES`; 'none' returns ``symbol`` itself.

    Returns
    -------
    mx.sym.Symbol
        Same arguments and outputs (names and order) as ``symbol``.
    """
    if mode == 'none':
        return symbol
    from mxnet.contrib import amp

    target_dtype = TARGET_DTYPES[mode]
    list_key = amp.amp.bfloat16 if mode == 'bf16' else target_dtype     # what amp's list functions accept
    float32_nodes = [node['name'] for node in graph_nodes(symbol) if node['op'] in FLOAT32_NODE_OPS]
    converted = amp.convert_symbol(
        symbol, target_dtype=target_dtype,
        target_dtype_ops=BF16_OPS if mode == 'bf16' else amp.list_lp16_ops(list_key),
        fp32_ops=sorted(set(amp.list_fp32_ops(list_key)) | set(EXTRA_FP32_OPS)),
        conditional_fp32_ops=amp.list_conditional_fp32_ops(list_key), excluded_sym_names=float32_nodes)
    return with_float32_parameters(converted)


def with_float32_parameters(symbol):
    """Mark every parameter and auxiliary state float32: behind an ``amp_cast`` their type cannot be inferred
    from the data, and ``Module.bind`` would fail with 'InferType pass cannot decide dtypes'."""
    internals = symbol.get_internals()
    for name in symbol.list_arguments() + symbol.list_auxiliary_states():
        if name not in ('data', 'label'):
            internals[name]._set_attr(__dtype__='0')           # 0: mshadow's kFloat32
    return symbol


def scale_losses(symbol, loss_scale):
    """``symbol`` with the gradient of every loss head multiplied by ``loss_scale``.

    The forward outputs (probabilities, loss values) are unchanged; divide the gradients back with the
    optimizer's ``rescale_grad`` (train.schedule.optimizer_params).
    """
    if loss_scale == 1:
        return symbol
    graph = json.loads(symbol.tojson())
    for node in graph['nodes']:
        if node['op'] in LOSS_OPS:
            attrs = node.setdefault('attrs', {})
            attrs['grad_scale'] = repr(float(attrs.get('grad_scale', 1.0)) * loss_scale)
    return mx.sym.load_json(json.dumps(graph))


def effective_loss_scale(mode, loss_scale, fp16_default):
    """``loss_scale`` when given, else ``fp16_default`` for fp16 and 1 otherwise."""
    if loss_scale is not None:
        return float(loss_scale)
    return float(fp16_default) if mode == 'fp16' else 1.0


def check_supported(mode, contexts):
    """UserError naming ``--amp`` when ``mode`` cannot run on ``contexts``; a warning when it runs slowly.

    Parameters
    ----------
    mode : str
        One of :data:`MODES`.
    contexts : list of mx.Context
    """
    if mode not in MODES:
        raise UserError('--amp %r: choose one of %s' % (mode, ', '.join(MODES)))
    kinds = {context.device_type for context in contexts}
    if mode == 'fp16' and kinds != {'gpu'}:
        raise UserError('--amp fp16 runs on GPUs only (give --gpus with the mxnet-cu112 build); on the CPU use '
                        '--amp bf16 where the CPU has AVX512_BF16, or leave --amp out')
    if mode != 'bf16':
        return
    if kinds != {'cpu'}:
        raise UserError('--amp bf16 runs on the CPU only (MXNet\'s bfloat16 kernels are oneDNN\'s); on GPUs use '
                        '--amp fp16')
    reason = bf16_unavailable_reason()
    if reason:
        raise UserError('--amp bf16: %s; it needs AVX-512, best with AVX512_BF16 or AMX (Intel Cooper Lake, '
                        'Sapphire Rapids or later, AMD Zen 4); train in float32 (leave --amp out)' % reason)
    cpu, flags = cpu_model_and_flags()
    if not flags & set(FAST_BF16_FLAGS):
        LOG.warning('--amp bf16: this CPU (%s) has no AVX512_BF16 or AMX instructions; oneDNN emulates bfloat16 '
                    'with AVX-512, usually slower than float32', cpu)


def bf16_unavailable_reason():
    """'this CPU (<model>) cannot run bfloat16 convolutions (oneDNN: <error>)', or None where it can."""
    problem = bf16_problem()
    return problem and 'this CPU (%s) cannot run bfloat16 convolutions (oneDNN: %s)' % (
        cpu_model_and_flags()[0], problem)


@functools.lru_cache(maxsize=None)
def bf16_problem():
    """Why this CPU cannot run a bfloat16 convolution forward and backward (the last line of MXNet's error), or
    None when it can. Runs an 8x8 convolution once per process."""
    data = mx.sym.Variable('data')
    symbol = mx.sym.MakeLoss(mx.sym.sum(mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, name='probe')))
    module = mx.mod.Module(convert_symbol(symbol, 'bf16'), data_names=('data',), label_names=None,
                           context=mx.cpu())
    try:
        with native_stderr_silenced():    # oneDNN logs its failure on stderr before raising it
            module.bind(data_shapes=[('data', (1, 4, 8, 8))], for_training=True)
            module.init_params(mx.init.One())
            module.forward_backward(mx.io.DataBatch(data=[mx.nd.ones((1, 4, 8, 8))]))
            mx.nd.waitall()
    except mx.base.MXNetError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return lines[-1].replace('MXNetError: ', '') if lines else 'bfloat16 convolution failed'
    return None


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 (where MXNet's C++ logging writes) to /dev/null for the ``with`` block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, 'w') as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
