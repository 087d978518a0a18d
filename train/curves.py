"""Training curves as a picture: losses and validation mAP per epoch, rewritten after every epoch."""
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.atomic import atomic_paths

NOT_PLOTTED = ('epoch', 'seconds', 'mAP')   # history keys that are not training losses


def plot_training_curves(history, path, metric_name='mAP'):
    """Save the losses (left) and the validation mAP (right) of ``history`` as a PNG, atomically.

    Parameters
    ----------
    history : list of dict
        Per epoch: ``epoch``, the training losses by name, optionally ``mAP`` (as train_net returns).
    path : str
        The PNG to write.
    metric_name : str
        Label of the mAP axis, e.g. ``'VOC07 mAP'``.
    """
    epochs = [record['epoch'] for record in history]
    losses = [name for name in history[0] if name not in NOT_PLOTTED] if history else []
    # A Figure of its own, not pyplot's: pyplot keeps every figure in a global registry, and drawing one per epoch
    # through it grew a long run's memory (bench/bench_soak.py: 3.4 % from epoch 5 to 32; 1.7 % without curves).
    figure = Figure(figsize=(10, 4))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    for name in losses:
        left.plot(epochs, [record[name] for record in history], marker='o', label=name)
    left.set(xlabel='epoch', ylabel='training loss', title='losses')
    if losses:
        left.legend()
    validated = [record for record in history if 'mAP' in record]
    right.plot([record['epoch'] for record in validated], [record['mAP'] for record in validated],
               marker='o', color='tab:green')
    right.set(xlabel='epoch', ylabel=metric_name, title='validation', ylim=(0, 1))
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_paths(path) as (temporary,):
        figure.savefig(temporary, format='png', dpi=80)
