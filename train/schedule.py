"""The learning-rate schedule, in optimizer updates, and the optimizer's parameters.

Every training epoch runs exactly ``num_records // batch_size`` updates (the last, partial batch is dropped),
so epoch ``e`` begins after ``e * iterations_per_epoch`` updates. The optimizer is created with
``begin_num_update`` set to that number, and MXNet's ``MultiFactorScheduler`` applies every step already
passed on its first call: a run resumed at epoch ``e`` uses the same learning rate at every later update as
the run that never stopped.

Schedules (``solver.lr_scheduler``), all MXNet's own classes (see :func:`constant_scheduler`), after a linear
warm-up over ``warmup_epochs`` from ``warmup_start_factor * lr`` to ``lr`` (update ``k`` of ``W`` warm-up updates
at ``lr * (f + (1 - f) * k / W)``, MXNet counting from 1):

- ``step``: ``lr`` times ``lr_factor`` for every step of ``lr_steps`` passed (update ``e * iters + 1`` is the
  first one after the step at epoch ``e``);
- ``cosine``: ``final_lr + (lr - final_lr) * (1 + cos(pi * (k - W) / (M - W))) / 2``;
- ``poly``: ``final_lr + (lr - final_lr) * (1 - (k - W) / (M - W)) ** poly_power``;

where ``M = end_epoch * iters``, so that the last update of the run is at ``final_lr``. Cosine and poly are
functions of the update count alone, so a resumed run continues them too.
"""
import mxnet as mx

from config.errors import UserError
from config.schema import flag_words

NEVER = 2 ** 62          # a FactorScheduler step no run reaches: a constant rate after the warm-up
SCHEDULERS = ('step', 'cosine', 'poly')


def constant_scheduler(lr, warmup_steps, warmup_begin_lr=0.0):
    """A constant learning rate after an optional warm-up (MultiFactorScheduler needs at least one step).

    MXNet's own class, not one of ours: under ``dist_async`` the servers unpickle the optimizer with its
    scheduler while ``import mxnet`` is still running (their loop runs inside it), so a class defined outside
    MXNet cannot be loaded there.
    """
    return mx.lr_scheduler.FactorScheduler(step=NEVER, factor=1.0, base_lr=lr, warmup_steps=warmup_steps,
                                           warmup_begin_lr=warmup_begin_lr)


def warmup_updates(warmup_epochs, iterations_per_epoch):
    """The warm-up length in updates: ``round(warmup_epochs * iterations_per_epoch)``."""
    return int(round(warmup_epochs * iterations_per_epoch))


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


def make_lr_scheduler(lr, lr_steps, lr_factor, iterations_per_epoch, warmup_epochs=0.0, kind='step',
                      warmup_start_factor=0.0, final_lr=0.0, end_epoch=None, poly_power=0.9):
    """The schedule of the module docstring: a linear warm-up, then ``kind``'s decay.

    Parameters
    ----------
    lr : float
        Base learning rate.
    lr_steps : sequence of int
        ``step``: epochs at which the rate is multiplied by ``lr_factor``.
    lr_factor : float
        At most 1.
    iterations_per_epoch : int
        Updates per epoch.
    warmup_epochs : float
        Warm-up length in epochs; may be fractional.
    kind : str
        One of :data:`SCHEDULERS`.
    warmup_start_factor : float
        The warm-up starts at this fraction of ``lr`` (0 to 1).
    final_lr : float
        ``cosine`` / ``poly``: the rate at update ``end_epoch * iterations_per_epoch`` and after.
    end_epoch : int
        ``cosine`` / ``poly``: the epoch at whose end the decay reaches ``final_lr``.
    poly_power : float
        ``poly``: the exponent.

    Returns
    -------
    mx.lr_scheduler.LRScheduler
        Called with the optimizer's update count (1 for the first update).
    """
    warmup_steps = warmup_updates(warmup_epochs, iterations_per_epoch)
    begin_lr = warmup_start_factor * lr
    if kind == 'step':
        steps = step_updates(lr_steps, iterations_per_epoch)
        if not steps:
            return constant_scheduler(lr, warmup_steps, begin_lr)
        return mx.lr_scheduler.MultiFactorScheduler(step=steps, factor=lr_factor, base_lr=lr,
                                                    warmup_steps=warmup_steps, warmup_begin_lr=begin_lr)
    max_update = int(end_epoch * iterations_per_epoch)
    if warmup_steps >= max_update:
        raise UserError('%s %g: the warm-up (%d updates) must end before %s %d (%d updates) under --lr-scheduler '
                        '%s' % (flag_words('solver.warmup_epochs'), warmup_epochs, warmup_steps,
                                flag_words('solver.end_epoch'), end_epoch, max_update, kind))
    shared = dict(base_lr=lr, final_lr=final_lr, warmup_steps=warmup_steps, warmup_begin_lr=begin_lr)
    if kind == 'cosine':
        return mx.lr_scheduler.CosineScheduler(max_update, **shared)
    return mx.lr_scheduler.PolyScheduler(max_update, pwr=poly_power, **shared)


def solver_scheduler(solver, iterations_per_epoch):
    """:func:`make_lr_scheduler` for the ``solver`` section of a configuration (checked first)."""
    check_schedule(solver)
    return make_lr_scheduler(solver.lr, solver.lr_steps, solver.lr_factor, iterations_per_epoch,
                             solver.warmup_epochs, solver.lr_scheduler, solver.warmup_start_factor,
                             solver.final_lr, solver.end_epoch, solver.poly_power)


def check_schedule(solver):
    """UserError naming the flag for a schedule setting of ``solver`` that cannot work."""
    kind = solver.lr_scheduler
    if kind not in SCHEDULERS:
        raise UserError('%s %r: choose one of %s' % (flag_words('solver.lr_scheduler'), kind, ', '.join(SCHEDULERS)))
    rules = [('solver.warmup_start_factor', 0 <= solver.warmup_start_factor <= 1, 'from 0 to 1')]
    if kind != 'step':
        rules += [('solver.final_lr', 0 <= solver.final_lr <= solver.lr, 'from 0 to --lr %g' % solver.lr),
                  ('solver.warmup_epochs', solver.warmup_epochs < solver.end_epoch,
                   'below --end-epoch %d under --lr-scheduler %s' % (solver.end_epoch, kind))]
    if kind == 'poly':
        rules.append(('solver.poly_power', solver.poly_power > 0, 'above 0'))
    for dotted, ok, allowed in rules:
        if not ok:
            raise UserError('%s %g is out of range: %s' % (flag_words(dotted), getattr(solver, dotted.split('.')[1]),
                                                            allowed))


def describe(solver, iterations_per_epoch, begin_update):
    """The log line of the schedule: its kind, where it goes, the warm-up and the first update."""
    warmup = warmup_updates(solver.warmup_epochs, iterations_per_epoch)
    if solver.lr_scheduler == 'step':
        decay = 'steps at updates %s (epochs %s x %d iterations)' % (
            step_updates(solver.lr_steps, iterations_per_epoch), list(solver.lr_steps), iterations_per_epoch)
    else:
        decay = '%s%s decay to %.6g at update %d (epoch %d x %d iterations)' % (
            solver.lr_scheduler, ' (power %g)' % solver.poly_power if solver.lr_scheduler == 'poly' else '',
            solver.final_lr, solver.end_epoch * iterations_per_epoch, solver.end_epoch, iterations_per_epoch)
    return 'LR %.6g, %s, warm-up %d updates from %g x LR, starting at update %d' % (
        solver.lr, decay, warmup, solver.warmup_start_factor, begin_update)


def optimizer_params(optimizer, lr, momentum, wd, lr_scheduler, num_devices, begin_num_update, loss_scale=1.0,
                     clip_gradient=0.0):
    """Keyword arguments of ``mx.optimizer.create(optimizer, ...)``.

    The losses are already averaged over each device's images (``normalization='valid'``), so gradients
    summed over devices are divided by the device count only, and by the loss scale of mixed precision
    (train/amp.py), which multiplied them inside the graph. ``clip_gradient`` > 0 clips every element of the
    rescaled gradient to [-clip_gradient, clip_gradient] before the update (0: no clipping).

    Returns
    -------
    dict
    """
    params = dict(learning_rate=lr, wd=wd, lr_scheduler=lr_scheduler,
                  rescale_grad=1.0 / (max(num_devices, 1) * loss_scale), begin_num_update=begin_num_update)
    if clip_gradient > 0:
        params['clip_gradient'] = clip_gradient
    if optimizer == 'sgd':
        params['momentum'] = momentum
    else:
        params['beta1'] = momentum
    return params
