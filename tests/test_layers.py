"""The packages import downward only, and library code never imports a command-line module.

Layers, bottom to top (core/__init__.py explains them)::

    config < symbol < core < dataset < evaluate < train < tools, entry scripts, bench

Every ``import`` statement counts, also those inside functions (a lazy import is still a dependency).
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ('config', 'symbol', 'core', 'dataset', 'evaluate', 'train', 'tools')
CLI_MODULES = ('tools.cli',)          # argparse helpers: for entry scripts and tools only
LIBRARY = ('config', 'symbol', 'core', 'dataset', 'evaluate', 'train')


def imported_modules(path):
    """Every module name ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    with open(path) as handle:
        tree = ast.parse(handle.read(), path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += ['%s.%s' % (node.module, alias.name) for alias in node.names]
    return names


def package_files(package):
    folder = os.path.join(ROOT, package)
    for directory, _, files in os.walk(folder):
        for name in sorted(files):
            if name.endswith('.py'):
                yield os.path.join(directory, name)


def layer_of(module):
    top = module.split('.')[0]
    return LAYERS.index(top) if top in LAYERS else None


@pytest.mark.parametrize('package', LAYERS)
def test_a_package_imports_only_its_own_layer_or_lower(package):
    upward = []
    for path in package_files(package):
        for module in imported_modules(path):
            layer = layer_of(module)
            if layer is not None and layer > LAYERS.index(package):
                upward.append('%s imports %s' % (os.path.relpath(path, ROOT), module))
    assert upward == []


@pytest.mark.parametrize('package', LIBRARY)
def test_library_code_never_imports_a_cli_module(package):
    found = ['%s imports %s' % (os.path.relpath(path, ROOT), module) for path in package_files(package)
             for module in imported_modules(path) if module in CLI_MODULES and not path.endswith('cli.py')]
    assert found == []


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule bites: a function-level ``from train.x import y`` in a lower layer is found."""
    path = tmp_path / 'lower.py'
    path.write_text('def f():\n    from train.params import match_params\n    return match_params\n')
    assert [layer_of(module) for module in imported_modules(str(path))] == [LAYERS.index('train')] * 2


def test_entry_scripts_are_thin():
    """The entry scripts parse flags and call the library; demo.py's detector and image loop live in
    evaluate/detect_images.py."""
    sizes = {}
    for script in ('train.py', 'evaluate.py', 'demo.py', 'deploy.py', 'quantization.py'):
        with open(os.path.join(ROOT, script)) as handle:
            tree = ast.parse(handle.read())
        sizes[script] = sum(1 for node in tree.body if isinstance(node, ast.FunctionDef))
    assert max(sizes.values()) <= 10, sizes


def test_the_project_packages_are_the_ones_imported():
    """``symbol`` and ``evaluate`` also name a standard-library module (3.9) and a PyPI package: the ones
    imported here must be this project's."""
    import evaluate
    import symbol
    for package in (evaluate, symbol):
        assert os.path.dirname(os.path.abspath(package.__file__)).startswith(ROOT), package


def test_the_python_running_is_one_the_metadata_names():
    import sys
    with open(os.path.join(ROOT, 'pyproject.toml')) as handle:
        line = next(line for line in handle if line.startswith('requires-python'))
    low, high = line.split('"')[1].split(',')
    version = '%d.%d' % sys.version_info[:2]
    as_tuple = lambda text: tuple(int(part) for part in text.lstrip('<>=').split('.'))   # noqa: E731
    assert (low, high) == ('>=3.10', '<3.12') and as_tuple(low) <= as_tuple(version) < as_tuple(high)
