"""Training recipes: whole configurations that were measured, one YAML file per recipe in this folder.

A recipe holds schema keys (config/schema.py, sections ``data``/``model``/``solver``/``run``/``eval``), each
with the reason its value was chosen as a comment. ``python train.py --recipe NAME`` merges it over the
schema defaults; a ``--config-file``, the flags and ``--opts`` given still win (see
:func:`config.schema.build_config`). ``model.network_overrides`` replaces settings of
``symbol_factory.NETWORKS`` and is saved in ``<prefix>-config.yaml``, so evaluation rebuilds the same graph.
"""
import os

from omegaconf import OmegaConf

from config.errors import UserError

FOLDER = os.path.dirname(os.path.abspath(__file__))
RECIPES = {name[:-len('.yaml')]: os.path.join(FOLDER, name)
           for name in sorted(os.listdir(FOLDER)) if name.endswith('.yaml')}


def recipe_path(name):
    """The YAML file of recipe ``name``; a UserError lists the recipes there are."""
    if name not in RECIPES:
        raise UserError('--recipe %s: no such recipe; choose one of %s (files in %s)'
                        % (name, ', '.join(RECIPES), FOLDER))
    return RECIPES[name]


def load_recipe(name):
    """Recipe ``name`` as a plain nested dict (only the keys it sets)."""
    return OmegaConf.to_container(OmegaConf.load(recipe_path(name)))
