"""The learning-rate schedule, in optimizer updates, and the optimizer's parameters.

Every training epoch runs exactly ``num_records // batch_size`` updates (the last, partial batch is dropped),
so epoch ``e`` begins after ``e * iterations_per_epoch`` updates. The optimizer is created with
``begin_num_update`` set to that number, and MXNet's ``MultiFactorScheduler`` applies every step already
passed on its first call: a run resumed at epoch ``e`` uses the same learning rate at every later update as
the run that never stopped.
"""
import mxnet as mx

NEVER = 2 ** 62          # a FactorScheduler step no run reaches: a constant rate after the warm-up


def constant_scheduler(lr, warmup_steps):
    """A constant learning rate after an optional warm-up (MultiFactorScheduler needs at least one step).

    MXNet's own class, not one of ours: under ``dist_async`` the servers unpickle the optimizer with its
    scheduler while ``import mxnet`` is still running (their loop runs inside it), so a class defined outside
    MXNet cannot be loaded there.
    """
    return mx.lr_scheduler.FactorScheduler(step=NEVER, factor=1.0, base_lr=lr, warmup_steps=warmup_steps,
                                           warmup_begin_lr=0.0)


def step_updates(lr_steps, iterations_per_epoch):
    """Epochs at which the LR drops -> update counts; steps at epoch 0 or below are dropped.

    Parameters
    ----------
    lr_steps : sequence of int
        Epochs, increasing.
    iterations_per_epoch : int
        Updates per epoch.

    Returns
    -------
    list of int
        ``[epoch * iterations_per_epoch, ...]``.
    """
    return [int(epoch * iterations_per_epoch) for epoch in lr_steps if epoch > 0]


def make_lr_scheduler(lr, lr_steps, lr_factor, iterations_per_epoch, warmup_epochs=0.0):
    """The schedule: linear warm-up from 0 over ``warmup_epochs``, then ``lr`` times ``lr_factor`` per step.

    Parameters
    ----------
    lr : float
        Base learning rate.
    lr_steps : sequence of int
        Epochs at which the rate is multiplied by ``lr_factor``.
    lr_factor : float
        At most 1.
    iterations_per_epoch : int
        Updates per epoch.
    warmup_epochs : float
        Warm-up length in epochs; may be fractional.

    Returns
    -------
    mx.lr_scheduler.LRScheduler
        Called with the optimizer's update count (1 for the first update).
    """
    warmup_steps = int(round(warmup_epochs * iterations_per_epoch))
    steps = step_updates(lr_steps, iterations_per_epoch)
    if not steps:
        return constant_scheduler(lr, warmup_steps)
    return mx.lr_scheduler.MultiFactorScheduler(step=steps, factor=lr_factor, base_lr=lr,
                                                warmup_steps=warmup_steps, warmup_begin_lr=0.0)


def optimizer_params(optimizer, lr, momentum, wd, lr_scheduler, num_devices, begin_num_update, loss_scale=1.0):
    """Keyword arguments of ``mx.optimizer.create(optimizer, ...)``.

    The losses are already averaged over each device's images (``normalization='valid'``), so gradients
    summed over devices are divided by the device count only, and by the loss scale of mixed precision
    (train/amp.py), which multiplied them inside the graph.

    Returns
    -------
    dict
    """
    params = dict(learning_rate=lr, wd=wd, lr_scheduler=lr_scheduler,
                  rescale_grad=1.0 / (max(num_devices, 1) * loss_scale), begin_num_update=begin_num_update)
    if optimizer == 'sgd':
        params['momentum'] = momentum
    else:
        params['beta1'] = momentum
    return params
