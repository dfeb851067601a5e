"""The storage layout has one owner (``mm_assets.core.layout``) and hand-off tables are checked
against their declared schemas (``mm_assets.core.schemas``)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import polars as pl
import pytest

from mm_assets.core import layout, schemas
from mm_assets.core.records import QUARANTINE_SCHEMA
from mm_assets.core.schemas import SchemaError
from mm_assets.core.storage import Store

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("mm_assets", "resources", "sensors")
OWNERS = {REPO / "mm_assets" / "core" / "layout.py", REPO / "mm_assets" / "core" / "schemas.py"}
ROOT = "|".join(map(re.escape, layout.ROOT_FOLDERS))
#: a root folder followed by "/" at the start of a string or right after a "/"
PATH_LITERAL = re.compile(rf"(?:^|/)(?:{ROOT})/")
#: calls whose first argument is a storage path (Store methods; any receiver)
STORE_METHODS = re.compile(r"^(ls|exists|path|url|open_read|open_write|rm|parquet_rows"
                           r"|read_\w+|write_\w+)$")
#: helpers taking ``(store, folder, ...)``: the second argument is a storage folder
FOLDER_HELPERS = {"read_shard", "read_sharded", "write_shards", "sharded_keys", "shard_ids",
                  "shard_rel", "ShardSink"}


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def path_literals(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every storage path spelled in ``source`` (see the module doc)."""
    tree = ast.parse(source)
    docs, found = _docstrings(tree), []
    in_fstring = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
            if any(PATH_LITERAL.search(p) for p in parts):
                found.append((node.lineno, ast.unparse(node)))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docs and id(node) not in in_fstring
              and PATH_LITERAL.search(node.value)):
            found.append((node.lineno, repr(node.value)))
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            pos = 1 if name in FOLDER_HELPERS else 0 if STORE_METHODS.match(name) else None
            if pos is not None and len(node.args) > pos:
                arg = node.args[pos]
                if (isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                        and arg.value.split("/")[0] in layout.ROOT_FOLDERS):
                    found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_no_storage_path_outside_layout():
    bad = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            if path in OWNERS:
                continue
            for line, text in path_literals(path.read_text()):
                bad.append(f"{path.relative_to(REPO)}:{line}: {text}")
    assert not bad, "storage paths outside mm_assets/core/layout.py:\n" + "\n".join(bad)


@pytest.mark.parametrize("source, n", [
    ('x = f"raw_shards/{shard}.tar"', 1),
    ('x = "exact_duplicates/groups.parquet"', 1),
    ('x = "see {root}/reports/funnel.html"', 1),
    ('store.ls("mixtures")', 1),
    ('read_sharded(store, "merged")', 1),
    ('store.exists(f"quarantine/{stage}")', 1),
    ('"""Writes ``raw_shards/{shard}.tar``."""', 0),  # a docstring documents, it is no path
    ('per_shard(context, "raw_shards", fn)', 0),  # an asset name
    ('x = f"{asset}/{name}"', 0),
    ('store.ls(layout.MIXTURES)', 0),
])
def test_the_path_check_finds_what_it_should(source, n):
    assert len(path_literals(source)) == n, path_literals(source)


def test_every_template_lives_under_a_declared_root_folder():
    one = "x"
    for name, fn in inspect.getmembers(layout, inspect.isfunction):
        params = inspect.signature(fn).parameters
        if fn.__module__ != layout.__name__ or {"store", "folder", "prefix", "suffix"} & set(params):
            continue  # listings, and templates under a folder the caller names
        rel = fn(*[one] * len(params))
        assert rel.split("/")[0] in layout.ROOT_FOLDERS, (name, rel)
    for name, value in vars(layout).items():
        if name.isupper() and isinstance(value, str) and "/" in value:
            assert value.split("/")[0] in layout.ROOT_FOLDERS, (name, value)
    for folder in layout.ROOT_FOLDERS:  # the module docstring draws every folder
        assert f" {folder}/" in layout.__doc__, folder


def test_schemas_are_declared_dtypes():
    for name, value in vars(schemas).items():
        if name.isupper():
            assert value and all(isinstance(d, pl.DataType) or issubclass(d, pl.DataType)
                                 for d in value.values()), name
    assert list(schemas.QUARANTINE) == list(QUARANTINE_SCHEMA)


# ------------------------------------------------------------------ schema checks
def test_read_names_file_and_missing_column(tmp_path):
    store = Store(str(tmp_path))
    rel = layout.curated_decisions("000000")
    store.write_parquet(rel, pl.DataFrame({"key": ["a"], "status": ["kept"]}))
    with pytest.raises(SchemaError) as e:
        store.read_table(rel, schemas.CURATED_DECISIONS)
    msg = str(e.value)
    assert store.url(rel) in msg and "'reason'" in msg and "missing" in msg
    assert e.value.column == "reason" and e.value.found is None
    assert e.value.where == store.url(rel)


def test_read_names_file_and_wrong_dtype(tmp_path):
    store = Store(str(tmp_path))
    rel = layout.CLUSTER_ASSIGNMENTS
    store.write_parquet(rel, pl.DataFrame({"key": ["a"], "space": ["image"], "cluster": [1],
                                           "distance": [0.5]}))  # Int64, Float64
    with pytest.raises(SchemaError) as e:
        store.read_table(rel, schemas.CLUSTER_ASSIGNMENTS)
    msg = str(e.value)
    assert store.url(rel) in msg and "'cluster'" in msg
    assert "expected Int32" in msg and "found Int64" in msg
    assert isinstance(e.value, ValueError)


def test_read_allows_extra_columns(tmp_path):
    store = Store(str(tmp_path))
    rel = layout.curated_decisions("000001")
    df = pl.DataFrame({"key": ["a"], "status": ["removed"], "reason": ["semdedup"],
                       "note": ["newer writer"]})
    store.write_parquet(rel, df)
    assert store.read_table(rel, schemas.CURATED_DECISIONS).equals(df)


def test_write_refuses_a_table_not_exactly_its_schema(tmp_path):
    store = Store(str(tmp_path))
    rel = layout.NEAR_GROUPS
    good = pl.DataFrame({"key": ["a"], "near_group": ["a"], "near_group_size": [1]},
                        schema=schemas.NEAR_GROUPS)
    cases = {
        "'near_group_size' missing": good.drop("near_group_size"),
        "'near_group_size' has the wrong dtype: expected UInt32, found Int64":
            good.cast({"near_group_size": pl.Int64}),
        "'extra' (String) is not declared": good.with_columns(pl.lit("x").alias("extra")),
        "out of order": good.select("near_group", "key", "near_group_size"),
    }
    for expected, df in cases.items():
        with pytest.raises(SchemaError, match=re.escape(expected)) as e:
            store.write_table(rel, df, schemas.NEAR_GROUPS)
        assert str(e.value).startswith(f"{store.url(rel)}: column ")
        assert not store.exists(rel)  # nothing written


def test_round_trip_keeps_the_bytes(tmp_path):
    store = Store(str(tmp_path))
    df = pl.DataFrame({"key": ["a", "b"], "action": ["keep", None], "semdup": [True, False],
                       "decile": [3, None]}, schema=schemas.CURATED_INDEX)
    rel = layout.curated_index("fp", "000000")
    store.write_table(rel, df, schemas.CURATED_INDEX)
    assert store.read_table(rel, schemas.CURATED_INDEX).equals(df)
    store.write_parquet("plain.parquet", df)
    assert store.read_bytes(rel) == store.read_bytes("plain.parquet")
    hashes = pl.DataFrame([], schema=schemas.IMAGE_HASHES)  # nested dtypes, empty table
    store.write_table(layout.image_hashes("000000"), hashes, schemas.IMAGE_HASHES)
    back = store.read_table(layout.image_hashes("000000"), schemas.IMAGE_HASHES)
    assert back.schema == hashes.schema
