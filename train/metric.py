"""``MultiBoxMetric``: the two SSD training losses as the training log shows them, read from outputs by name."""
import mxnet as mx
import numpy as np

from symbol.multibox import CLS_LABEL, CLS_PROB, LOC_LOSS, output_key

# The names say what each sum is divided by. MXNet's SSD example divided the smooth-L1 sum by every anchor
# with a class target (positives and the 3x as many mined negatives), so its number is about 4x smaller.
METRIC_NAMES = ('CrossEntropy', 'SmoothL1/positive')
PROBABILITY_FLOOR = 1e-12        # -log(p) uses max(p, this): a probability of exactly 0 counts 27.6, not inf


def multibox_loss_sums(cls_prob, loc_loss, cls_label):
    """Sums and counts behind the two losses of one batch.

    Parameters
    ----------
    cls_prob : (B, C + 1, A) float
        Softmax class probabilities, background first.
    loc_loss : (B, A * 4) float
        Smooth-L1 loss of every box coordinate (0 for anchors that are not positive).
    cls_label : (B, A) float
        Class target of every anchor: ``-1`` ignored, ``0`` background, ``1 + class`` positive.

    Returns
    -------
    sums : (2,) float64
        Sum of ``-log p[target]`` over anchors with a target ``>= 0``, and the sum of ``loc_loss``.
    counts : (2,) int64
        Number of anchors with a target ``>= 0``, and number of positive anchors (target ``> 0``).
    """
    cls_prob, loc_loss, cls_label = np.asarray(cls_prob), np.asarray(loc_loss), np.asarray(cls_label)
    if cls_prob.ndim != 3 or cls_label.shape != (cls_prob.shape[0], cls_prob.shape[2]):
        raise ValueError('cls_prob (B, C + 1, A) %s and cls_label (B, A) %s do not fit together'
                         % (cls_prob.shape, cls_label.shape))
    valid = cls_label >= 0
    target = np.where(valid, cls_label, 0).astype(np.int64)                        # (B, A)
    prob = np.take_along_axis(cls_prob, target[:, None, :], axis=1)[:, 0, :]      # (B, A) p[target]
    cross_entropy = -np.log(np.maximum(prob[valid].astype(np.float64), PROBABILITY_FLOOR)).sum()
    sums = np.array([cross_entropy, loc_loss.sum(dtype=np.float64)])
    counts = np.array([valid.sum(), (cls_label > 0).sum()], dtype=np.int64)
    return sums, counts


class MultiBoxMetric(mx.metric.EvalMetric):
    """Cross entropy over the anchors that have a class target, and smooth L1 per positive anchor.

    ``CrossEntropy`` is the mean of ``-log p[target]`` over anchors whose ``cls_label`` is ``>= 0``;
    ``SmoothL1/positive`` is the sum of the ``loc_loss`` output divided by the number of positive anchors.
    Sums and counts add up over batches (local since the last :meth:`reset_local`, global since :meth:`reset`).
    With no such anchors a value is 0, while NaN or infinite losses come through as such.

    Parameters
    ----------
    output_names : list of str
        ``symbol.list_outputs()`` of the train graph; ``cls_prob_output``, ``loc_loss_output`` and
        ``cls_label_output`` are read by name.
    name : str
        Metric name.
    """

    def __init__(self, output_names, name='MultiBox'):
        output_names = list(output_names)
        self.wanted = [output_key(n) for n in (CLS_PROB, LOC_LOSS, CLS_LABEL)]
        missing = [n for n in self.wanted if n not in output_names]
        if missing:
            raise ValueError('outputs %s missing from %s: MultiBoxMetric needs the train graph'
                             % (missing, output_names))
        super().__init__(name, output_names=output_names, has_global_stats=True)

    def reset(self):
        """Zero the local and global sums."""
        self.reset_local()
        self.global_sum_metric = np.zeros(len(METRIC_NAMES))
        self.global_num_inst = np.zeros(len(METRIC_NAMES), dtype=np.int64)

    def reset_local(self):
        """Zero the sums since the last log line."""
        self.sum_metric = np.zeros(len(METRIC_NAMES))
        self.num_inst = np.zeros(len(METRIC_NAMES), dtype=np.int64)

    def update(self, labels, preds):
        """Add one batch.

        Parameters
        ----------
        labels : list of NDArray
            Unused: the targets come from the ``cls_label`` output.
        preds : list of NDArray
            The train graph's outputs, aligned with ``output_names``.
        """
        arrays = dict(zip(self.output_names, preds))
        self._add(*(arrays[n] for n in self.wanted))

    def update_dict(self, label, pred):
        """Add one batch from a name -> array dict, as ``Module.update_metric`` calls it."""
        self._add(*(pred[n] for n in self.wanted))

    def _add(self, cls_prob, loc_loss, cls_label):
        sums, counts = multibox_loss_sums(*(a.asnumpy() if isinstance(a, mx.nd.NDArray) else a
                                            for a in (cls_prob, loc_loss, cls_label)))
        self.sum_metric += sums
        self.num_inst += counts
        self.global_sum_metric += sums
        self.global_num_inst += counts

    def get(self):
        """``(['CrossEntropy', 'SmoothL1/positive'], [value, value])`` since the last :meth:`reset_local`."""
        return list(METRIC_NAMES), self._values(self.sum_metric, self.num_inst)

    def get_global(self):
        """``(['CrossEntropy', 'SmoothL1/positive'], [value, value])`` since the last :meth:`reset`."""
        return list(METRIC_NAMES), self._values(self.global_sum_metric, self.global_num_inst)

    @staticmethod
    def _values(sums, counts):
        return [float(s / max(c, 1)) for s, c in zip(sums, counts)]
