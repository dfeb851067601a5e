"""Checks of the paths given on the command line, made before any work starts.

Every ``mm-assets`` option that names a file or folder (``ingest --input/--images``, ``run
--config``, ``report --out``, ``sample --out``, ``eval compare --out``) is checked here first, so
a typo costs one line and exit 2 (``error: --config cfg.yml: no such file``), never a traceback
or a funnel printed before the failure. Local paths are checked on the filesystem; URLs
(``s3://...``, anything with ``://``) are left to the storage layer, which reports its own errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def is_url(path: str) -> bool:
    """True for an fsspec URL (``s3://bucket/key``), False for a local path."""
    return "://" in path


def check_input_file(path: str, option: str) -> str:
    """``path`` when it is a readable file (or a URL); else an error naming ``option``.

    Raises:
        FileNotFoundError: missing, a folder, or not readable (``--config x: no such file``).
    """
    if is_url(path):
        return path
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{option} {path}: no such file")
    if p.is_dir():
        raise FileNotFoundError(f"{option} {path}: is a folder, expected a file")
    if not os.access(p, os.R_OK):
        raise FileNotFoundError(f"{option} {path}: not readable (permission denied)")
    return path


def check_input_dir(path: str, option: str) -> str:
    """``path`` when it is a readable folder (or a URL).

    Raises:
        FileNotFoundError: missing, a file, or not readable.
    """
    if is_url(path):
        return path
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{option} {path}: no such folder")
    if not p.is_dir():
        raise FileNotFoundError(f"{option} {path}: is a file, expected a folder")
    if not os.access(p, os.R_OK | os.X_OK):
        raise FileNotFoundError(f"{option} {path}: not readable (permission denied)")
    return path


def check_output_file(path: str, option: str) -> str:
    """``path`` when a file can be written there: its folder exists and is writable, and it is
    not itself a folder (URLs are not checked).

    Raises:
        FileNotFoundError: the folder does not exist, or ``path`` is a folder.
        PermissionError: the folder is not writable.
    """
    if is_url(path):
        return path
    p = Path(path)
    if p.is_dir():
        raise FileNotFoundError(f"{option} {path}: is a folder, expected a file name")
    parent = p.resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: folder {parent} is not writable")
    return path


def check_output_dir(path: str, option: str) -> str:
    """``path`` when a folder can be written there: it is a writable folder, or it does not exist
    yet and its nearest existing ancestor is a writable folder (it will be created).

    Raises:
        FileNotFoundError: ``path`` or an ancestor is a file.
        PermissionError: the folder (or the ancestor it will be created in) is not writable.
    """
    if is_url(path):
        return path
    p = Path(path).resolve()
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = "" if probe == p else f" ({probe} is a file)"
        raise FileNotFoundError(f"{option} {path}: not a folder{where}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: {probe} is not writable")
    return path


def read_yaml_mapping(path: str, option: str) -> dict[str, Any]:
    """The YAML mapping in the file ``path`` (empty file: ``{}``).

    Raises:
        FileNotFoundError: see :func:`check_input_file`.
        ValueError: not valid YAML (with its line and column), or not a mapping.
    """
    import yaml

    check_input_file(path, option)
    try:
        if is_url(path):
            import fsspec

            with fsspec.open(path, "rt") as f:
                data = yaml.safe_load(f)
        else:
            data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ValueError(f"{option} {path}: not valid YAML{where}: {problem}") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{option} {path}: not a text file ({e.reason})") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        got = type(data).__name__
        raise ValueError(f"{option} {path}: expected a mapping, got a {got}")  # noqa: TRY004
    return data
