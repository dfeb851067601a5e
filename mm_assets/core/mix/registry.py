"""Where recipes live: shipped examples in ``mm_assets/recipes/``, a root's own recipes in
``{root}/recipes/`` (a root recipe with the same name wins). Adding a recipe needs no code
change. A root builds its own recipes; shipped examples are built only when named (the demo
names them)."""

from __future__ import annotations

from importlib import resources as ir

import yaml

from mm_assets.core import layout
from mm_assets.core.mix.recipe import Recipe, RecipeError, parse_recipe
from mm_assets.core.storage import Store


def shipped() -> dict[str, str]:
    folder = ir.files("mm_assets") / "recipes"
    return {p.name[:-5]: p.read_text() for p in folder.iterdir() if p.name.endswith(".yaml")}


def root_recipes(store: Store) -> list[str]:
    """Names of the root's own recipes (``{root}/recipes/*.yaml``), sorted."""
    return sorted(name[:-5] for name in store.ls(layout.RECIPES, ".yaml"))


def all_recipes(store: Store) -> dict[str, str]:
    """Recipe name -> YAML text, shipped and user recipes together."""
    out = shipped()
    for name in store.ls(layout.RECIPES, ".yaml"):
        out[name[:-5]] = store.read_bytes(layout.recipe(name)).decode()
    return out


def load_recipe(store: Store, name: str) -> Recipe:
    """The recipe called ``name``.

    Raises:
        RecipeError: unknown name, or invalid recipe (message names the field), or the file
            name and the recipe's ``name`` disagree.
    """
    texts = all_recipes(store)
    if name not in texts:
        raise RecipeError(f"unknown recipe {name!r}; known: {sorted(texts)}")
    try:
        recipe = parse_recipe(texts[name])
    except yaml.YAMLError as e:
        raise RecipeError(f"{name}.yaml: not valid YAML: {' '.join(str(e).split())}") from e
    except RecipeError as e:
        raise RecipeError(f"{name}.yaml: {e}") from e
    if recipe.name != name:
        raise RecipeError(f"name: recipe file {name}.yaml declares name {recipe.name!r}")
    return recipe
