"""Streaming merge: same output, same order as the in-memory merge; waiting members spilled."""

from collections import Counter

import numpy as np
import polars as pl

from mm_assets.core.dedup.hashing import list_hash
from mm_assets.core.records import Sample
from mm_assets.core.shards import sample_to_wds
from mm_assets.core.text.merge import MergeConfig, merge_group
from mm_assets.core.text.merge_stream import merged_stream


def _in_memory(shards, tables, samples, cfg, stats):
    """The merged stream as it was before streaming: every waiting member held in memory."""
    h = pl.concat([tables(s) for s in shards])
    size = dict(h.group_by("pixel_list_hash").len().iter_rows())
    group_of = dict(zip(h["key"].to_list(), h["pixel_list_hash"].to_list(), strict=True))
    open_groups: dict[str, list] = {}
    for shard in shards:
        for s in samples(shard):
            stats["in"] += 1
            g = group_of.get(s.key)
            if g is None or size[g] == 1:
                stats["passthrough"] += 1
                yield s
                continue
            open_groups.setdefault(g, []).append(s)
            if len(open_groups[g]) == size[g]:
                members = open_groups.pop(g)
                stats["groups"] += 1
                yield from merge_group(members, cfg)


def _corpus(n=600, n_images=120, n_shards=6, seed=0, image_bytes=40):
    """Scattered duplicates (60% reuse), 10% text-only, 3% two images, keys out of order."""
    rng = np.random.default_rng(seed)
    imgs = [bytes([i % 256, i // 256]) * (image_bytes // 2) for i in range(n_images)]
    out = []
    for i in rng.permutation(n):
        key = f"k{i:04d}"
        q = f"<image>\nquestion {int(rng.integers(0, 4))}"
        conv = [{"from": "human", "value": q}, {"from": "gpt", "value": f"a{i % 7}"}]
        r = rng.random()
        if r < 0.1:
            out.append(Sample(key, [{"from": "human", "value": f"t{i}"},
                                    {"from": "gpt", "value": "x"}]))
            continue
        p = int(rng.integers(0, n_images))
        ims = [imgs[p]] + ([imgs[(p + 3) % n_images]] if r > 0.97 else [])
        conv[0]["value"] = "<image>" * (len(ims) - 1) + q
        out.append(Sample(key, conv, ims, ["png"] * len(ims), "src", {"i": int(i)}))
    per = n // n_shards
    shards = {f"{j:05d}": out[j * per:(j + 1) * per] for j in range(n_shards)}
    kept = {s.key for ss in shards.values() for s in ss if int(s.key[1:]) % 9}  # some removed
    shards = {j: [s for s in ss if s.key in kept] for j, ss in shards.items()}

    def tables(shard):
        rows = [(s.key, list_hash([bytes(b).hex() for b in s.images])) for s in shards[shard]
                if s.images]
        return pl.DataFrame(rows, schema={"key": pl.Utf8, "pixel_list_hash": pl.Utf8},
                            orient="row")

    return list(shards), tables, lambda shard: iter(shards[shard])


def test_streamed_merge_equals_the_in_memory_merge_sample_for_sample(tmp_path):
    names, tables, samples = _corpus()
    cfg = MergeConfig(max_turns=4)  # small: groups split into parts too
    want = [sample_to_wds(s) for s in _in_memory(names, tables, samples, cfg, Counter())]
    stats: Counter = Counter()
    got = [sample_to_wds(s) for s in merged_stream(names, tables, samples, cfg, stats,
                                                    str(tmp_path))]
    assert got == want
    assert stats["groups"] > 30 and stats["parts"] > stats["groups"]
    assert stats["in"] == stats["passthrough"] + stats["groups"] + stats["merged_members"]
    assert stats["incomplete_groups"] == 0 and stats["spool_bytes"] > 0
    assert list(tmp_path.iterdir()) == []  # the spool is gone


def test_spool_keeps_one_image_set_per_group_not_every_members():
    names, tables, samples = _corpus(2000, 50, 4, seed=3, image_bytes=20_000)
    stats: Counter = Counter()
    list(merged_stream(names, tables, samples, MergeConfig(max_turns=10**4), stats))
    spilled = stats["merged_members"]  # every member but each group's last waits on disk
    assert spilled > 1200 and stats["groups"] < 110
    # keys arrive in random order: a member is spilled with its image only when its key is the
    # smallest so far in its group (about ln m of a group's m members); all would be 20 kB each
    assert stats["spool_bytes"] < 0.35 * spilled * 20_000


def test_a_group_whose_member_never_arrives_is_merged_at_the_end_and_counted():
    a = Sample("a", [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "1"}],
               [b"img"], ["png"])
    b = Sample("b", a.conversations, [b"img"], ["png"])
    h = list_hash([b"img".hex()])
    table = pl.DataFrame({"key": ["a", "b", "c"], "pixel_list_hash": [h, h, h]})
    stats: Counter = Counter()
    out = list(merged_stream(["0"], lambda s: table, lambda s: iter([b, a]), MergeConfig(),
                             stats))
    assert [s.key for s in out] == ["a"] and out[0].metadata["merged_from"] == ["a", "b"]
    assert out[0].images == [b"img"] and stats["incomplete_groups"] == 1
