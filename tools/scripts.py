"""The entry scripts at the repository root, loaded as modules by tests and benchmarks (their names, e.g.
``train`` or ``evaluate``, belong to packages, so they cannot simply be imported)."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(filename):
    """``<repository root>/<filename>`` (e.g. ``'train.py'``) as a fresh module."""
    spec = importlib.util.spec_from_file_location(filename.replace('.py', '') + '_script', ROOT / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
