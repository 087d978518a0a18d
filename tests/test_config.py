"""config/schema.py and core/run_dir.py: one schema with a comment per key, YAML that reads back to the same
configuration, older runs' -config.json mapped onto the schema, and the run directory's names."""
import dataclasses
import json

import pytest
from omegaconf import OmegaConf

from config import schema
from config.errors import UserError
from config.recipes import RECIPES, recipe_path
from core.run_dir import RunDir


def all_keys():
    for section in schema.SECTIONS:
        for item in dataclasses.fields(type(getattr(schema.DEFAULTS, section))):
            yield section, item


def test_every_key_has_a_one_line_comment_and_every_flag_a_key():
    keys = list(all_keys())
    assert len(keys) >= 49                                   # every setting train_net took, now in one place
    for section, item in keys:
        text = item.metadata['help']
        assert text and '\n' not in text and len(text) < 100, (section, item.name)
    dotted = {'%s.%s' % (section, item.name) for section, item in keys}
    for flag, target in schema.FLAG_KEYS.items():
        assert '.'.join(target.split('.')[:2]) in dotted, flag     # data.mean_pixels.0: one channel of a key
    assert schema.FLAG_KEYS['nms_thresh'] == 'model.nms_thresh' and schema.FLAG_KEYS['force_nms'] == \
        'model.force_suppress'                               # one name per setting, whatever the flag is called


def test_written_yaml_reads_back_to_the_same_configuration(tmp_path):
    config = schema.build_config(recipe_path('demo'), opts=['solver.lr', '0.05', 'data.class_names', '[a,b]'])
    run = RunDir(str(tmp_path / 'run'))
    run.write_config(config)
    assert schema.to_dict(run.read_config()) == schema.to_dict(config)
    text = open(run.config_path).read()
    assert text.count('\n  # ') == len(list(all_keys()))             # one comment line above every key
    assert '  # base learning rate\n  lr: 0.05\n' in text


def test_an_older_runs_config_json_maps_onto_the_schema(tmp_path):
    run = RunDir(str(tmp_path / 'old'))
    legacy = {'network': 'mobilenet0.25', 'data_shape': 192, 'mean_pixels': [1, 2, 3], 'std_pixels': [4, 5, 6],
              'nms_thresh': None, 'force_nms': True, 'class_names': ['a', 'b'], 'num_class': 2,
              'network_overrides': {'from_layers': ['relu10']}, 'lr_steps': [3], 'epoch': 7, 'pattern': 'x',
              'ctx': ['cpu(0)'], 'frozen_params': ['conv0_weight'], 'iterations_per_epoch': 5, 'gpus': '0'}
    with open(run.legacy_config_path, 'w') as handle:
        json.dump(legacy, handle)
    config = run.read_config()
    assert (config.model.network, config.model.data_shape) == ('mobilenet0.25', 192)
    assert list(config.data.mean_pixels) == [1, 2, 3] and list(config.data.std_pixels) == [4, 5, 6]
    assert config.model.nms_thresh is None and config.model.force_suppress is True
    assert list(config.data.class_names) == ['a', 'b'] and list(config.solver.lr_steps) == [3]
    assert config.run.pretrained_epoch == 7 and config.run.monitor_pattern == 'x'
    assert OmegaConf.to_container(config.model.network_overrides) == {'from_layers': ['relu10']}
    assert config.run.gpus is None                            # devices are the machine's, not the file's
    assert run.frozen_params(3) == ['conv0_weight']          # what --resume of such a run keeps frozen


def test_yaml_wins_over_json_and_no_file_is_none(tmp_path):
    run = RunDir(str(tmp_path / 'both'))
    assert run.read_config() is None and not run.has_config()
    with open(run.legacy_config_path, 'w') as handle:
        json.dump({'network': 'resnet50'}, handle)
    run.write_config(schema.from_flat(network='mobilenet0.25'))
    assert run.read_config().model.network == 'mobilenet0.25'


def test_run_directory_names_every_file():
    run = RunDir('model/demo/ssd_demo')
    assert (run.symbol_path, run.params_path(3), run.states_path(3), run.trainer_state_path(3)) == (
        'model/demo/ssd_demo-symbol.json', 'model/demo/ssd_demo-0003.params', 'model/demo/ssd_demo-0003.states',
        'model/demo/ssd_demo-0003.trainer.json')
    assert (run.config_path, run.classes_path, run.best_path, run.curves_path, run.eval_dir(12)) == (
        'model/demo/ssd_demo-config.yaml', 'model/demo/ssd_demo.classes', 'model/demo/ssd_demo-best.json',
        'model/demo/ssd_demo-curves.png', 'model/demo/ssd_demo-eval-0012')
    assert run.deploy().prefix == 'model/demo/deploy_ssd_demo'
    assert run.deploy('out').params_path(2) == 'out/deploy_ssd_demo-0002.params'


def test_a_missing_epoch_names_the_epochs_there_are(tmp_path):
    run = RunDir(str(tmp_path / 'none'))
    with pytest.raises(UserError, match='no checkpoint is saved under --prefix'):
        run.read_params(3)


def test_recipes_are_yaml_files_on_the_schema():
    assert 'demo' in RECIPES
    with pytest.raises(UserError, match='no such recipe; choose one of demo'):
        recipe_path('nothing')


def test_yaml_files_are_read_with_a_safe_loader(tmp_path):
    """A config file cannot make the loader run code (``!!python/...`` tags are refused)."""
    marker = tmp_path / 'ran'
    hostile = tmp_path / 'hostile.yaml'
    hostile.write_text('solver:\n  lr: !!python/object/apply:os.system ["touch %s"]\n' % marker)
    with pytest.raises(UserError, match='is not valid YAML'):
        schema.build_config(config_file=str(hostile))
    assert not marker.exists()
