"""Synthetic-data specs (YAML): which generator, how many samples, seed, image size, options.

```yaml
name: clocks_v1          # = file name; one `synthetic` partition per spec
generator: clocks        # clocks | counting | charts
n: 10000                 # samples to render (indices 0..n-1)
seed: 0                  # sample i is rendered from np.random.default_rng([seed, i]) alone
size: 384                # image side in pixels (square)
shard_size: 1000         # samples per output shard
options: {second_hand: 0.3, max_rotation: 20}   # generator options (see each generator)
```

Shipped examples live in ``mm_assets/synthetic/``; a root's own specs in
``{root}/synthetic/{name}.yaml`` (a root spec with the same name wins), like recipes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from mm_assets.core import layout
from mm_assets.core.yaml_registry import YamlRegistry

_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class SpecError(ValueError):
    """A spec that cannot be used; the message names the field."""


def check_known(cls: type, raw: dict, generator: str) -> None:
    """Refuse option names that the generator's options dataclass ``cls`` does not declare.

    Raises:
        SpecError: naming the unknown options and the known ones.
    """
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    if set(raw) - known:
        raise SpecError(f"options: unknown {sorted(set(raw) - known)} for {generator}; known "
                        f"{sorted(known)}")


@dataclass(frozen=True, slots=True)
class SynthSpec:
    """A validated generator spec (see module doc)."""

    name: str
    generator: str
    n: int = 1000
    seed: int = 0
    size: int = 384
    shard_size: int = 1000
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        from mm_assets.core.synth.generate import GENERATORS

        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise SpecError(f"name: must be non-empty [A-Za-z0-9_], got {self.name!r}")
        if self.generator not in GENERATORS:
            raise SpecError(f"generator: one of {sorted(GENERATORS)}, got {self.generator!r}")
        for f, lo in (("n", 1), ("seed", 0), ("size", 64), ("shard_size", 1)):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise SpecError(f"{f}: must be an integer >= {lo}, got {v!r}")
        if not isinstance(self.options, dict):
            raise SpecError(f"options: expected a mapping, got {self.options!r}")
        GENERATORS[self.generator].options(self.options)  # raises SpecError

    def opts(self):
        """The generator's options dataclass (defaults filled in)."""
        from mm_assets.core.synth.generate import GENERATORS

        return GENERATORS[self.generator].options(self.options)


def parse_spec(text: str) -> SynthSpec:
    """Spec from YAML text.

    Raises:
        SpecError: not a mapping, unknown field, wrong type or value (message names the field).
    """
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"not valid YAML: {' '.join(str(e).split())}") from e
    if not isinstance(data, dict):
        raise SpecError("spec must be a YAML mapping")
    unknown = sorted(set(data) - set(SynthSpec.__dataclass_fields__))
    if unknown:
        raise SpecError(f"unknown field(s) {unknown}; known: "
                        f"{sorted(SynthSpec.__dataclass_fields__)}")
    if "name" not in data or "generator" not in data:
        raise SpecError("name and generator are required")
    return SynthSpec(**data)


REGISTRY: YamlRegistry[SynthSpec] = YamlRegistry(
    "synthetic spec", "spec", "synthetic", layout.SYNTHETIC, layout.synthetic_spec, parse_spec,
    SpecError)
shipped = REGISTRY.shipped


def root_specs(store) -> list[str]:
    """Names of the root's own specs (``{root}/synthetic/*.yaml``), sorted."""
    return REGISTRY.root_names(store)


def all_specs(store) -> dict[str, str]:
    """Spec name -> YAML text, shipped and the root's own together (root wins)."""
    return REGISTRY.texts(store)


def load_spec(store, name: str) -> SynthSpec:
    """The spec called ``name``.

    Raises:
        SpecError: unknown name, invalid spec, or file name and ``name`` disagree.
    """
    return REGISTRY.load(store, name)
