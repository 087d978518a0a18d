"""The files of one run, all named ``<prefix>-*``, read and written only here.

::

    <prefix>-symbol.json          the training graph (MXNet checkpoint format)
    <prefix>-%04d.params          weights of an epoch (``arg:`` / ``aux:`` keys)
    <prefix>-%04d.states          optimizer state of an epoch
    <prefix>-%04d.trainer.json    the trainer's state at that epoch: counters, every hook's state, frozen names
    <prefix>-%04d.%05d.*          a mid-epoch checkpoint (SIGINT/SIGTERM): epochs done, batches of the next
    <prefix>-config.yaml          the run's configuration, every value explicit (``--config-file`` repeats it)
    <prefix>-config.json          the same of runs before the YAML schema (read, never written)
    <prefix>.classes              class names, one per line
    <prefix>-balanced.rec/.idx    the training records repeated by --balance repeat-factor (with .classes, .json)
    <prefix>-best.json            the epoch with the best validation mAP
    <prefix>-curves.png           losses and mAP per epoch
    <prefix>-eval-%04d/           evaluate.py's results
    <prefix>-ema-*                the moving average of the weights (--ema, train/ema.py): a run dir of its own

``RunDir(prefix).deploy()`` is the run directory of the deploy files (``<dir>/deploy_<name>``). Later
features add their names here: rank-0-only writes, EMA checkpoints, TensorBoard folders, a ``last`` pointer.
"""
import glob
import json
import os
import re

from config.defaults import CLASSES_SUFFIX, DEPLOY
from config.errors import UserError
from config.schema import FLAG_KEYS, apply, flat_overrides, merge_file, schema, to_yaml
from core import checkpoint
from core.atomic import atomic_open, atomic_paths, remove_stale_temporaries, write_json

CONFIG_YAML, CONFIG_JSON = '-config.yaml', '-config.json'
EMA_SUFFIX = '-ema'                   # RunDir(prefix).ema(): the moving average's files


def default_prefix(network, data_shape):
    """``model/ssd_<network>_<data_shape>``: where checkpoints go when ``--prefix`` is not given."""
    return os.path.join('model', 'ssd_%s_%d' % (network, data_shape))


def read_class_file(path):
    """Names in a ``.classes`` file, one per line (blank lines skipped)."""
    with open(path) as handle:
        return tuple(line.strip() for line in handle if line.strip())


class RunDir:
    """The files of the run saved under ``prefix`` (exactly as given: nothing is appended).

    Parameters
    ----------
    prefix : str
        e.g. ``model/demo/ssd_demo``.
    """

    def __init__(self, prefix):
        self.prefix = prefix

    def __repr__(self):
        return 'RunDir(%r)' % self.prefix

    # ------------------------------------------------------------------------------------------- names
    @property
    def symbol_path(self):
        return self.prefix + '-symbol.json'

    def position_tag(self, epoch, batch=0):
        """``<prefix>-0002`` after 2 epochs, ``<prefix>-0002.00042`` 42 batches into the third."""
        return '%s-%04d' % (self.prefix, epoch) + ('.%05d' % batch if batch else '')

    def params_path(self, epoch, batch=0):
        return self.position_tag(epoch, batch) + '.params'

    def states_path(self, epoch, batch=0):
        return self.position_tag(epoch, batch) + '.states'

    def trainer_state_path(self, epoch, batch=0):
        return self.position_tag(epoch, batch) + '.trainer.json'

    @property
    def config_path(self):
        return self.prefix + CONFIG_YAML

    @property
    def legacy_config_path(self):
        return self.prefix + CONFIG_JSON

    @property
    def classes_path(self):
        return self.prefix + CLASSES_SUFFIX

    @property
    def best_path(self):
        return self.prefix + '-best.json'

    @property
    def balanced_prefix(self):
        """``<prefix>-balanced``: the ``.rec``/``.idx``/``.classes``/``.json`` of ``--balance repeat-factor``."""
        return self.prefix + '-balanced'

    @property
    def curves_path(self):
        return self.prefix + '-curves.png'

    def eval_dir(self, epoch, deploy=False):
        """``<prefix>-eval-0002`` (``<prefix>-eval-deploy-0002`` for the deploy graph)."""
        return '%s-eval-%s%04d' % (self.prefix, 'deploy-' if deploy else '', epoch)

    def deploy(self, deploy_dir=None):
        """The run directory of the deploy files: ``<deploy_dir or dirname(prefix)>/deploy_<basename>``."""
        directory, name = os.path.split(self.prefix)
        return RunDir(os.path.join(directory if deploy_dir is None else deploy_dir, DEPLOY['file_tag'] + name))

    def ema(self):
        """The run directory of the weights' moving average (``--ema``): ``<prefix>-ema``, whose ``-symbol.json``,
        ``-%04d.params``, ``-config.yaml`` and ``.classes`` evaluate.py / demo.py / deploy.py read as any run's."""
        return RunDir(self.prefix + EMA_SUFFIX)

    # ------------------------------------------------------------------------------------- checkpoints
    def epochs(self):
        """Epochs with a ``.params`` file, ascending."""
        return checkpoint.available_epochs(self.prefix)

    def mid_epoch_positions(self):
        """``[(epochs done, batches of the next)]`` of the mid-epoch checkpoints saved, ascending."""
        pattern = re.compile(re.escape(os.path.basename(self.prefix)) + r'-(\d{4})\.(\d{5})\.params$')
        found = (pattern.match(os.path.basename(path)) for path in glob.glob(glob.escape(self.prefix) + '-*.params'))
        return sorted((int(match.group(1)), int(match.group(2))) for match in found if match)

    def newest_position(self):
        """``(epoch, batch)`` of the newest complete checkpoint (a ``.params`` is its set's last file, so its
        presence means the set is complete), mid-epoch ones included; None when there is none."""
        positions = [(epoch, 0) for epoch in self.epochs()] + self.mid_epoch_positions()
        return max(positions) if positions else None

    def has_checkpoint(self):
        """Whether the symbol or any epoch's parameters exist."""
        return os.path.isfile(self.symbol_path) or bool(self.epochs())

    def missing_epoch_words(self, epoch):
        """Why epoch ``epoch`` cannot be read, with the epochs that exist."""
        epochs = self.epochs()
        return '%s does not exist; %s' % (self.params_path(epoch), 'epochs saved under this prefix: %s' % ', '.join(
            map(str, epochs)) if epochs else 'no checkpoint is saved under --prefix %s' % self.prefix)

    def read_params(self, epoch, flag=None, batch=0):
        """``(arg_params, aux_params)`` of epoch ``epoch`` (``batch`` > 0: a mid-epoch checkpoint); a missing one
        lists those saved (``flag`` named)."""
        path = self.params_path(epoch, batch)
        lead = flag + ': ' if flag else ''
        if not os.path.isfile(path):
            raise UserError(lead + self.missing_epoch_words(epoch))
        return checkpoint.load_params_file(path, flag or path)

    def read_symbol(self):
        """The saved graph."""
        import mxnet as mx
        try:
            return mx.sym.load(self.symbol_path)
        except mx.base.MXNetError:
            raise UserError('%s is not an MXNet graph file (truncated?)' % self.symbol_path) from None

    def save_checkpoint(self, epoch, symbol, arg_params, aux_params, write_states=None, trainer_state=None,
                        batch=0):
        """One checkpoint set, committed by its ``.params``: symbol, optimizer states (``write_states(path)``),
        trainer state (JSON values) and parameters, each written, fsync'ed and renamed, the ``.params`` last
        (core/atomic.py). ``batch`` > 0 names a mid-epoch checkpoint. Returns the ``.params`` path.

        Raises
        ------
        UserError
            The disk is full or a file size limit is hit: the earlier checkpoints stay as they were, and no
            partial file is left under a real name.
        """
        import mxnet as mx
        paths = [self.symbol_path] + ([self.states_path(epoch, batch)] if write_states else []) + (
            [self.trainer_state_path(epoch, batch)] if trainer_state is not None else []) + [
            self.params_path(epoch, batch)]
        try:
            with atomic_paths(*paths) as temporary:
                symbol.save(temporary[0])
                if write_states:
                    write_states(temporary[1])
                if trainer_state is not None:
                    with open(temporary[-2], 'w') as handle:
                        json.dump(trainer_state, handle, indent=1)
                checkpoint.save_params(temporary[-1], arg_params, aux_params)
                check_readable(temporary[1:2] if write_states else [], temporary[-1])
        except (OSError, mx.base.MXNetError) as err:
            raise UserError(write_failure_words(self.params_path(epoch, batch), err, self.newest_position_words())) \
                from None
        return self.params_path(epoch, batch)

    def newest_position_words(self):
        """The newest complete checkpoint in words, for messages."""
        newest = self.newest_position()
        return self.params_path(*newest) if newest else 'none was saved yet'

    def remove_stale_temporaries(self):
        """Remove the temporaries a killed run left beside this run's files; returns their names."""
        directory, stem = os.path.split(os.path.abspath(self.prefix))
        return remove_stale_temporaries(directory, stem)

    def remove_mid_epoch_before(self, epoch):
        """Remove the mid-epoch checkpoints that epoch ``epoch``'s full checkpoint supersedes."""
        for done, batch in self.mid_epoch_positions():
            if done < epoch:
                for path in (self.trainer_state_path(done, batch), self.states_path(done, batch),
                             self.params_path(done, batch)):
                    if os.path.isfile(path):
                        os.remove(path)

    def save_deploy_graph(self, epoch, symbol, arg_params, aux_params, config, class_names, note):
        """A deploy checkpoint: classes, configuration (``note`` as its header comment), symbol, parameters."""
        paths = (self.classes_path, self.config_path, self.symbol_path, self.params_path(epoch))
        with atomic_paths(*paths) as (classes, config_tmp, symbol_tmp, params_tmp):
            write_names(classes, class_names)
            with open(config_tmp, 'w') as handle:
                handle.write(''.join('# %s\n' % line for line in note) + to_yaml(config))
            symbol.save(symbol_tmp)
            checkpoint.save_params(params_tmp, arg_params, aux_params)

    # ------------------------------------------------------------------------------------ configuration
    def has_config(self):
        return os.path.isfile(self.config_path) or os.path.isfile(self.legacy_config_path)

    def read_config(self):
        """The run's configuration on the schema: ``<prefix>-config.yaml``, else an older run's
        ``<prefix>-config.json`` (flat names mapped onto the schema); None when there is neither."""
        if os.path.isfile(self.config_path):
            return merge_file(schema(), self.config_path, 'the run configuration')
        legacy = self.read_legacy_config()
        if legacy is None:
            return None
        known = {name: value for name, value in legacy.items() if name in FLAG_KEYS and name != 'gpus'}
        return apply(schema(), flat_overrides(known), self.legacy_config_path + ':')

    def read_legacy_config(self):
        """``<prefix>-config.json`` as a dict, or None."""
        return read_json_file(self.legacy_config_path, 'remove it and pass --network, --data-shape and --num-class')

    def write_config(self, config):
        """``<prefix>-config.yaml``, every key with its comment."""
        with atomic_open(self.config_path) as handle:
            handle.write(to_yaml(config))

    # ------------------------------------------------------------------------------- classes, best, state
    def read_class_names(self):
        """``<prefix>.classes`` as a tuple, or None when there is none."""
        return read_class_file(self.classes_path) if os.path.isfile(self.classes_path) else None

    def write_class_names(self, names):
        with atomic_open(self.classes_path) as handle:
            handle.write(''.join(name + '\n' for name in names))

    def read_best(self):
        """The best-epoch record (``epoch``, ``mAP``, ``ap_per_class``...), or None."""
        best = read_json_file(self.best_path, 'remove it')
        return best if isinstance(best, dict) and 'epoch' in best else None

    def write_best(self, record):
        write_json(self.best_path, record, indent=2)

    def read_trainer_state(self, epoch, batch=0):
        """The trainer's state saved with a checkpoint, or None (checkpoints of older runs have none)."""
        return read_json_file(self.trainer_state_path(epoch, batch), 'remove it to resume without the hook state')

    def frozen_params(self, epoch, batch=0):
        """The parameters a checkpoint was trained with fixed, or None when no record says."""
        state = self.read_trainer_state(epoch, batch) or {}
        if 'frozen_params' in state:
            return state['frozen_params']
        return (self.read_legacy_config() or {}).get('frozen_params')


def check_readable(state_files, params_file):
    """Read the written arrays back before they are renamed in: MXNet's writer can report success for a file
    the disk did not take whole (a full disk or a size limit hit when its buffer is flushed at close).

    Raises
    ------
    OSError
        ``EIO`` with the file's name when a file does not read back whole.
    """
    import mxnet as mx
    for path in list(state_files) + [params_file]:
        try:
            mx.nd.load(path)
        except mx.base.MXNetError:
            raise OSError(5, 'the file did not read back whole (truncated write)', path) from None


DISK_ERRORS = {28: 'the disk is full', 27: 'a file size limit was hit', 122: 'the disk quota is used up'}


def write_failure_words(path, err, newest):
    """One line for a checkpoint that could not be written: why, what is intact, what to do."""
    reason = DISK_ERRORS.get(getattr(err, 'errno', None))
    if reason is None:
        lines = [line.strip() for line in str(err).splitlines() if line.strip() and 'Traceback' not in line]
        text = (lines or [type(err).__name__])[-1]
        reason = ('the disk is full or a file size limit was hit' if any(word in text.lower() for word in (
            'write', 'incomplete', 'truncated')) else text[:200])
    return ('could not write %s: %s; the newest complete checkpoint is %s, unchanged; free space, then continue '
            'with --resume last' % (path, reason, newest))


def write_names(path, names):
    with open(path, 'w') as handle:
        handle.write(''.join(name + '\n' for name in names))


def read_json_file(path, what_to_do):
    """A JSON file as Python values, None when it does not exist; invalid JSON is a UserError."""
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        try:
            return json.load(handle)
        except ValueError:
            raise UserError('%s is not valid JSON; %s' % (path, what_to_do)) from None


def example_prefix_candidates(prefix, network, data_shape):
    """Where MXNet's example would have saved for ``--prefix`` ending in ``_``: ``<prefix><network>_<data_shape>``
    (its train.py), then ``<prefix><network>`` (its evaluate.py); without ``data_shape``, every saved
    ``<prefix><network>_<side>``."""
    if not network:
        return []
    base = prefix + network
    if data_shape:
        return ['%s_%d' % (base, data_shape), base]
    sides = {path[len(base) + 1:].split('-')[0] for path in glob.glob(glob.escape(base) + '_*-*.params')}
    return ['%s_%s' % (base, side) for side in sorted(sides, key=int) if side.isdigit()] + [base]


def resolve_prefix(prefix, network=None, data_shape=None):
    """``prefix`` as given, unless it ends in ``_`` (MXNet's example habit, e.g. ``model/ssd_``), has no
    checkpoint, and ``<prefix><network>_<data_shape>`` (or ``<prefix><network>``) has one: then that, with a
    one-line note. ``network`` / ``data_shape`` are the flags' values (None when not given)."""
    if not prefix or not prefix.endswith('_') or RunDir(prefix).has_checkpoint():
        return prefix
    found = [candidate for candidate in example_prefix_candidates(prefix, network, data_shape)
             if RunDir(candidate).has_checkpoint()]
    if not found:
        return prefix
    if not data_shape and len(found) > 1:
        raise UserError('--prefix %s: checkpoints %s all fit; give --data-shape to choose'
                        % (prefix, ', '.join(found)))
    print('note: --prefix %s has no checkpoint; using %s (MXNet\'s example appended <network>_<data-shape>)'
          % (prefix, found[0]))
    return found[0]


def prefix_for(prefix, network, data_shape, default_network, default_shape):
    """The prefix scripts that load a model use: ``prefix`` (see :func:`resolve_prefix`), else where train.py
    saves by default for ``network`` / ``data_shape`` (the defaults when those are None)."""
    if prefix:
        return resolve_prefix(prefix, network, data_shape)
    return default_prefix(network or default_network, data_shape or default_shape)


def choose_epoch(run, epoch):
    """``epoch`` when given, else the best validated epoch of ``<prefix>-best.json``, else the last saved.

    Returns
    -------
    (int, str)
        The epoch and why it was chosen.
    """
    if epoch is not None:
        return epoch, 'given'
    epochs = run.epochs()
    try:
        best = (run.read_best() or {}).get('epoch')
    except UserError:
        best = None
    if best in epochs:
        return best, 'best validated, %s' % run.best_path
    if not epochs:
        raise UserError('no checkpoint %s-NNNN.params exists; give the --prefix train.py saved under' % run.prefix)
    return epochs[-1], 'last saved'

