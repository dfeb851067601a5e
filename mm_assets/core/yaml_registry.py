"""Named YAML documents — mixture recipes, synthetic-data specs, mining recipes — in one way:
shipped examples in a package folder (``mm_assets/{package_folder}/*.yaml``), a root's own in a
root folder (``{root}/{folder}/*.yaml``, see :mod:`mm_assets.core.layout`); a root document
with the same name wins. Adding one needs no code change. The file name is the document's
``name``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources as ir
from typing import Generic, TypeVar

import yaml

T = TypeVar("T")


@dataclass(frozen=True)
class YamlRegistry(Generic[T]):
    """One kind of named YAML document.

    Attributes:
        kind: what the documents are, for messages (``"mining recipe"``).
        file_word: how a file is called in the name-mismatch message (``"recipe"``).
        package_folder: folder of shipped examples under the ``mm_assets`` package.
        root_folder: the root folder (a :mod:`~mm_assets.core.layout` constant).
        path: ``file name -> root-relative path`` (a :mod:`~mm_assets.core.layout` template).
        parse: ``YAML text -> document``; raises ``error`` (or ``yaml.YAMLError``).
        error: the kind's ``ValueError`` subclass, raised by :meth:`load`.
    """

    kind: str
    file_word: str
    package_folder: str
    root_folder: str
    path: Callable[[str], str]
    parse: Callable[[str], T]
    error: type[ValueError]

    def shipped(self) -> dict[str, str]:
        """Shipped examples: name -> YAML text."""
        folder = ir.files("mm_assets") / self.package_folder
        return {p.name[:-5]: p.read_text() for p in folder.iterdir()
                if p.name.endswith(".yaml")}

    def root_names(self, store) -> list[str]:
        """Names of the root's own documents, sorted."""
        return sorted(n[:-5] for n in store.ls(self.root_folder, ".yaml"))

    def texts(self, store) -> dict[str, str]:
        """Name -> YAML text, shipped and the root's own together (root wins)."""
        out = self.shipped()
        for n in store.ls(self.root_folder, ".yaml"):
            out[n[:-5]] = store.read_bytes(self.path(n)).decode()
        return out

    def load(self, store, name: str) -> T:
        """The document called ``name``.

        Raises:
            error: unknown name (the known ones listed), invalid YAML or document (prefixed
                with the file name), or the file name and the document's ``name`` disagree.
        """
        texts = self.texts(store)
        if name not in texts:
            raise self.error(f"unknown {self.kind} {name!r}; known: {sorted(texts)}")
        try:
            doc = self.parse(texts[name])
        except yaml.YAMLError as e:
            raise self.error(f"{name}.yaml: not valid YAML: {' '.join(str(e).split())}") from e
        except self.error as e:
            raise self.error(f"{name}.yaml: {e}") from e
        if doc.name != name:
            raise self.error(f"name: {self.file_word} file {name}.yaml declares name "
                             f"{doc.name!r}")
        return doc
