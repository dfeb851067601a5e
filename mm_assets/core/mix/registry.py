"""Where recipes live: shipped examples in ``mm_assets/recipes/``, a root's own recipes in
``{root}/recipes/`` (a root recipe with the same name wins). Adding a recipe needs no code
change. A root builds its own recipes; shipped examples are built only when named (the demo
names them)."""

from __future__ import annotations

from mm_assets.core import layout
from mm_assets.core.mix.recipe import Recipe, RecipeError, parse_recipe
from mm_assets.core.storage import Store
from mm_assets.core.yaml_registry import YamlRegistry

REGISTRY: YamlRegistry[Recipe] = YamlRegistry(
    "recipe", "recipe", "recipes", layout.RECIPES, layout.recipe, parse_recipe, RecipeError)
shipped = REGISTRY.shipped


def root_recipes(store: Store) -> list[str]:
    """Names of the root's own recipes (``{root}/recipes/*.yaml``), sorted."""
    return REGISTRY.root_names(store)


def all_recipes(store: Store) -> dict[str, str]:
    """Recipe name -> YAML text, shipped and user recipes together (root wins)."""
    return REGISTRY.texts(store)


def load_recipe(store: Store, name: str) -> Recipe:
    """The recipe called ``name``.

    Raises:
        RecipeError: unknown name, or invalid recipe (message names the field), or the file
            name and the recipe's ``name`` disagree.
    """
    return REGISTRY.load(store, name)
