"""``mm-assets backfill``: launch Dagster asset backfills through the webserver's GraphQL API.

The webserver's ``launchPartitionBackfill`` mutation creates an *asset backfill*; the
``dagster-daemon`` (backfill daemon) then launches its runs, several partitions per run as the
assets' ``BackfillPolicy`` allows, in dependency order. Nothing is executed by this command.

Chunking: one mutation carries at most ``CHUNK`` (10,000) partition keys, so a backfill of up
to 10,000 shards is exactly one backfill; larger selections become one backfill per chunk of
10,000 keys (all ids are printed, and ``--wait`` follows all of them).

Only requests, tqdm and :func:`mm_assets.partitions.parse_shard_spec` are used: the command
needs the webserver URL, not the Dagster instance.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import requests

CHUNK = 10_000
DEFAULT_URL = "http://127.0.0.1:3000"
TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
KINDS = ("shards", "recipes", "pool_shards", "mining")  # dynamic partition sets backfilled
KINDS += ("semdedup_ranges",)  # SemDeDup ranges: --shards all, names or globs (image__*)

ASSETS_QUERY = """query Assets { assetNodes { assetKey { path } isPartitioned
  partitionDefinition { dimensionTypes { dynamicPartitionsDefinitionName } } } }"""
DETAIL_QUERY = """query Detail($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) {
  assetKey { path } partitionKeys assetPartitionStatuses { __typename
    ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } }"""
LAUNCH_MUTATION = """mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) { __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } } } }"""
STATUS_QUERY = """query Status($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on Error { message }
  ... on PartitionBackfill { id status error { message } assetBackfillData {
    assetBackfillStatuses { ... on AssetPartitionsStatusCounts { assetKey { path }
      numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized
      numPartitionsFailed } } } } } }"""


class BackfillError(Exception):
    """A problem the user can fix (unknown asset or shard, webserver unreachable): exit 2."""


class GraphQL:
    """Minimal GraphQL client for ``{url}/graphql``."""

    def __init__(self, url: str, timeout: float = 120.0):
        self.url, self.timeout = url.rstrip("/"), timeout

    def __call__(self, query: str, variables: dict | None = None) -> dict:
        try:
            r = requests.post(f"{self.url}/graphql", timeout=self.timeout,
                              json={"query": query, "variables": variables or {}})
        except requests.ConnectionError as e:
            raise BackfillError(f"cannot reach the Dagster webserver at {self.url} "
                                "(start it with ./scripts/ui, or pass --url)") from e
        if not r.ok:
            raise BackfillError(f"{self.url}/graphql answered HTTP {r.status_code}: "
                                f"{r.text[:300]}")
        body = r.json()
        if body.get("errors"):
            raise RuntimeError("GraphQL errors: " + "; ".join(e.get("message", str(e))
                                                               for e in body["errors"]))
        return body["data"]


@dataclass
class AssetState:
    """One selected asset as the webserver sees it: its partition keys and their status."""

    name: str
    partition_keys: list[str] = field(default_factory=list)
    materialized: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    kind: str = "shards"  # its dynamic partitions: shards, recipes, pool_shards or mining


def describe_assets(gql: GraphQL, names: list[str]) -> list[AssetState]:
    """Check that every name is an asset partitioned by one of :data:`KINDS` (``shards``; or
    all by ``recipes``: ``mixtures``; ``pool_shards``: ``pool_assign``; ``mining``:
    ``mined``); fetch its partitions.

    Raises:
        BackfillError: an unknown asset, one that is not partitioned by one of them, or a
            selection mixing two.
    """
    nodes = {"/".join(n["assetKey"]["path"]): n for n in gql(ASSETS_QUERY)["assetNodes"]}
    unknown = [n for n in names if n not in nodes]
    if unknown:
        raise BackfillError(f"unknown asset(s): {', '.join(unknown)}; known assets: "
                            f"{', '.join(sorted(nodes))}")
    kinds = {n: _dynamic_name(node) for n, node in nodes.items()}
    per_shard = sorted(n for n, k in kinds.items() if k in KINDS)
    wrong = [n for n in names if n not in per_shard]
    if wrong:
        raise BackfillError(f"not partitioned per shard or recipe: {', '.join(wrong)}; "
                            f"backfill one of {', '.join(per_shard)} (global assets: "
                            f"mm-assets run)")
    if len({kinds[n] for n in names}) > 1:
        raise BackfillError("assets of different partition sets (" + ", ".join(
            f"{n}: {kinds[n]}" for n in names) + ") need separate backfills")
    keys = [{"path": n.split("/")} for n in names]
    detail = {"/".join(n["assetKey"]["path"]): n
              for n in gql(DETAIL_QUERY, {"keys": keys})["assetNodes"]}
    states = []
    for name in names:
        node = detail[name]
        status = node.get("assetPartitionStatuses") or {}
        states.append(AssetState(name, list(node["partitionKeys"]),
                                 set(status.get("materializedPartitions", [])),
                                 set(status.get("failedPartitions", [])), kinds[name]))
    return states


def _dynamic_name(node: dict) -> str | None:
    pdef = node.get("partitionDefinition") or {}
    dims = pdef.get("dimensionTypes") or []
    return dims[0].get("dynamicPartitionsDefinitionName") if len(dims) == 1 else None


def select_keys(states: list[AssetState], spec: str, missing: bool) -> list[str]:
    """Partition keys from ``spec``; with ``missing``, only those some selected asset lacks.
    Corpus shards: ``0-99``, ``3,5``, globs, ``all``; recipes (mixtures, mined): names, globs,
    ``all``; pool shards (pool_assign): ``NAME__STEM``, globs, a pool ``NAME``, ``all``.

    Raises:
        BackfillError: a malformed spec or a key that is not a partition.
    """
    from mm_assets.core.mine.pool import parse_pool_spec
    from mm_assets.partitions import parse_recipe_spec, parse_shard_spec

    parse = {"recipes": parse_recipe_spec, "mining": parse_recipe_spec,
             "pool_shards": parse_pool_spec}.get(states[0].kind, parse_shard_spec)
    try:
        keys = parse(spec, states[0].partition_keys)
    except ValueError as e:
        raise BackfillError(str(e)) from e
    if missing:
        keys = [k for k in keys if any(k not in s.materialized for s in states)]
    return keys


def launch(gql: GraphQL, assets: list[str], keys: list[str], chunk: int = CHUNK,
           title: str = "") -> list[str]:
    """Launch one asset backfill per ``chunk`` keys; returns the backfill ids.

    Raises:
        RuntimeError: the webserver refused a backfill (its message is kept).
    """
    ids = []
    for i in range(0, len(keys), chunk):
        part = keys[i:i + chunk]
        params = {"assetSelection": [{"path": a.split("/")} for a in assets],
                  "partitionNames": part, "fromFailure": False,
                  "title": title or f"mm-assets backfill {','.join(assets)}",
                  "tags": [{"key": "mm_assets/shards", "value": f"{part[0]}..{part[-1]}"}]}
        res = gql(LAUNCH_MUTATION, {"params": params})["launchPartitionBackfill"]
        if res["__typename"] != "LaunchBackfillSuccess":
            msg = res.get("message") or "; ".join(e["message"] for e in res.get("errors", []))
            raise RuntimeError(f"launchPartitionBackfill: {res['__typename']}: {msg}")
        ids.append(res["backfillId"])
    return ids


def backfill_status(gql: GraphQL, backfill_id: str) -> dict:
    """``{status, targeted, materialized, failed, in_progress, error}`` of one backfill."""
    res = gql(STATUS_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
    if res["__typename"] != "PartitionBackfill":
        raise RuntimeError(f"backfill {backfill_id}: {res.get('message', res['__typename'])}")
    out = {"status": res["status"], "error": (res.get("error") or {}).get("message"),
           "targeted": 0, "materialized": 0, "failed": 0, "in_progress": 0}
    for s in (res.get("assetBackfillData") or {}).get("assetBackfillStatuses", []):
        out["targeted"] += s.get("numPartitionsTargeted", 0)
        out["materialized"] += s.get("numPartitionsMaterialized", 0)
        out["failed"] += s.get("numPartitionsFailed", 0)
        out["in_progress"] += s.get("numPartitionsInProgress", 0)
    return out


def wait_for(gql: GraphQL, ids: list[str], poll_s: float = 2.0,
             timeout_s: float | None = None) -> dict[str, dict]:
    """Poll until every backfill is finished, with a progress bar of asset partitions done.

    Raises:
        TimeoutError: ``timeout_s`` passed first.
    """
    from tqdm import tqdm

    t0 = time.monotonic()
    with tqdm(total=0, unit="partition", file=sys.stderr, dynamic_ncols=True) as bar:
        while True:
            states = {i: backfill_status(gql, i) for i in ids}
            bar.total = sum(s["targeted"] for s in states.values())
            bar.n = sum(s["materialized"] + s["failed"] for s in states.values())
            bar.set_postfix_str(",".join(sorted({s["status"] for s in states.values()})))
            bar.refresh()
            if all(s["status"] in TERMINAL for s in states.values()):
                return states
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"backfill(s) {ids} not finished after {timeout_s} s")
            time.sleep(poll_s)


def run_backfill(select: str, shards: str, missing: bool = False, dry_run: bool = False,
                 wait: bool = False, url: str = "") -> int:
    """The ``backfill`` command; returns the exit code (0 ok, 1 failed, 2 usage error)."""
    url = (url or os.environ.get("MM_ASSETS_URL") or DEFAULT_URL).rstrip("/")
    gql = GraphQL(url)
    assets = [s.strip() for s in select.split(",") if s.strip()]
    try:
        if not assets:
            raise BackfillError("--select needs at least one asset")
        states = describe_assets(gql, assets)
        keys = select_keys(states, shards, missing)
    except BackfillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    unit = {"recipes": "recipe", "mining": "mining recipe",
            "pool_shards": "pool shard"}.get(states[0].kind, "shard")
    what = f"{','.join(assets)} over {len(keys)} {unit}(s)"
    if not keys:
        print(f"nothing to backfill: {what}")
        return 0
    if dry_run:
        print(f"dry run: would backfill {what} (nothing launched):")
        print("\n".join(keys))
        return 0
    ids = launch(gql, assets, keys)
    for i in ids:
        print(f"backfill {i}: {what}  {url}/runs/b/{i}")
    if not wait:
        return 0
    states = wait_for(gql, ids)
    bad = {i: s for i, s in states.items() if s["status"] not in ("COMPLETED", "COMPLETED_SUCCESS")
           or s["failed"]}
    for i, s in states.items():
        print(f"backfill {i}: {s['status']}, {s['materialized']}/{s['targeted']} asset "
              f"partitions materialized, {s['failed']} failed" +
              (f" ({s['error']})" if s["error"] else ""))
    return 1 if bad else 0
