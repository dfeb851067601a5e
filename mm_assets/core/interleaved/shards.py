"""Interleaved document shards: a WebDataset tar of :func:`~.doc.to_wds` members per document.

Tar headers carry a fixed mtime and owner, so the same documents give byte-identical shards.
A standard loader reads them: ``webdataset.WebDataset(url)`` yields one dict per document
(``json`` plus ``{pos}.{ext}`` image members) that :func:`~.doc.from_wds` turns back into a
:class:`~.doc.Document`. Memory: one document at a time.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator
from typing import IO

from mm_assets.core.interleaved.doc import Document, from_wds, to_wds
from mm_assets.core.shards import iter_tar_groups


def write_docs(f: IO[bytes], docs: Iterable[Document]) -> int:
    """Write ``docs`` as one tar to an open binary file; returns the document count.

    Raises:
        DocumentError: a document that :func:`~.doc.to_wds` refuses (bad key).
    """
    n = 0
    with tarfile.open(fileobj=f, mode="w|", format=tarfile.GNU_FORMAT) as tf:
        for doc in docs:
            for name, data in to_wds(doc).items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o444
                info.uname = info.gname = "mm"
                tf.addfile(info, io.BytesIO(data))
            n += 1
    return n


def read_docs(f: IO[bytes]) -> Iterator[Document]:
    """Documents of one shard written by :func:`write_docs`, in order (one pass).

    Raises:
        DocumentError: a sample that does not read back (see :func:`~.doc.from_wds`).
        tarfile.TarError: a truncated or corrupt archive.
    """
    for key, parts in iter_tar_groups(f):
        yield from_wds({"__key__": key, **parts})
