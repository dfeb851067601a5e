"""Dagster run configs derived from the core config dataclasses (one source of fields).

Each core stage declares its settings once, as a frozen dataclass with defaults, types and
``__post_init__`` validation (e.g. :class:`~mm_assets.core.semantic.semdedup.SemDedupConfig`).
:func:`dagster_config` turns such a dataclass into a :class:`dagster.Config` subclass with the
same field names, types, defaults and descriptions (parsed from the dataclass's ``Attributes:``
docstring section), so the UI launchpad, ``mm-assets run --config``, schedules and the demo all
see the same defaults, and a default changed in core changes everywhere. The generated class
has ``core()``, which builds the validated dataclass (a bad value fails with the dataclass's
``ValueError`` naming it). Built with pydantic's ``create_model`` on ``dagster.Config``, which
Dagster 1.13 treats like a hand-written ``Config`` (launchpad defaults and schema included).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any, ClassVar

from dagster import Config
from pydantic import Field, create_model

_ATTR = re.compile(r"^(\s*)(\w+):\s*(.*)$")


class DerivedConfig(Config):
    """Base of every generated config: knows its core dataclass and builds it."""

    core_class: ClassVar[type]
    core_fields: ClassVar[tuple[str, ...]]
    tuple_fields: ClassVar[frozenset[str]] = frozenset()  # lists in run config, tuples in core

    def core(self) -> Any:
        """The validated core dataclass (``core_class(**fields)``).

        Raises:
            ValueError: a value the dataclass's ``__post_init__`` refuses (message names it).
        """
        values = {k: getattr(self, k) for k in self.core_fields}
        return self.core_class(**{k: tuple(v) if k in self.tuple_fields else v
                                  for k, v in values.items()})


def field_docs(cls: type) -> dict[str, str]:
    """``{field: description}`` from the Google-style ``Attributes:`` section of ``cls``."""
    doc = cls.__doc__ or ""
    if "Attributes:" not in doc:
        return {}
    out: dict[str, str] = {}
    name, indent = None, None
    for line in doc.split("Attributes:", 1)[1].splitlines():
        m = _ATTR.match(line)
        if m and (indent is None or len(m.group(1)) <= indent):
            indent, name = len(m.group(1)), m.group(2)
            out[name] = m.group(3).strip()
        elif name and line.strip():
            out[name] += " " + line.strip()
        elif not line.strip() and name and out[name]:
            name = None  # a blank line ends the section
    return out


def dagster_config(core: type, name: str, *, include: tuple[str, ...] | None = None,
                   exclude: tuple[str, ...] = (), extra: dict[str, tuple[Any, Any, str]]
                   | None = None, doc: str = "") -> type[DerivedConfig]:
    """A ``dagster.Config`` subclass holding the fields of the dataclass ``core``.

    Args:
        core: a (frozen) dataclass; its field types, defaults and docstring descriptions are
            copied; a field without a default stays required.
        name: class name shown in the launchpad (e.g. ``SemDedupAssetConfig``).
        include: only these fields of ``core`` (default: all but ``exclude``).
        exclude: fields of ``core`` left out (set by the asset, not by run config).
        extra: asset-only fields ``{name: (type, default, description)}`` that are not part
            of ``core`` (e.g. ``shard_size`` of the output writer, a ``device``).
        doc: the class docstring (default: the first line of ``core``'s).

    Returns:
        The class; ``instance.core()`` returns ``core(**fields)`` (validated by
        ``core.__post_init__``, which raises ``ValueError`` on a bad value).

    Raises:
        ValueError: ``include``/``exclude``/``extra`` name a field ``core`` does not have, or
            an ``extra`` field clashes with one of ``core``'s.
    """
    hints = typing.get_type_hints(core)
    all_fields = {f.name: f for f in dataclasses.fields(core)}
    chosen = list(include) if include is not None else [n for n in all_fields
                                                        if n not in exclude]
    bad = sorted(set(chosen) - set(all_fields)) + sorted(set(exclude) - set(all_fields))
    clash = sorted(set(extra or {}) & set(all_fields))
    if bad or clash:
        raise ValueError(f"{core.__name__}: unknown fields {bad}, extra fields clash {clash}")
    docs = field_docs(core)
    spec: dict[str, Any] = {}
    for n in chosen:
        f = all_fields[n]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = ...
        tp = hints[n]
        if typing.get_origin(tp) is tuple:  # Dagster config has lists, not tuples
            tp, default = list[typing.get_args(tp)[0]], (list(default) if default is not ...
                                                          else default)
        spec[n] = (tp, Field(default=default, description=docs.get(n) or None, repr=f.repr))
    for n, (tp, default, desc) in (extra or {}).items():
        spec[n] = (tp, Field(default=default, description=desc))
    summary = doc or (core.__doc__ or core.__name__).strip().splitlines()[0]
    cls = create_model(name, __base__=DerivedConfig, __doc__=summary, **spec)
    cls.core_class, cls.core_fields = core, tuple(chosen)
    cls.tuple_fields = frozenset(n for n in chosen if typing.get_origin(hints[n]) is tuple)
    return cls
