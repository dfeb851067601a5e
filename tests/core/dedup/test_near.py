"""Near-duplicate search with an index against brute force; star grouping; flip invariance."""

import io

import numpy as np
import polars as pl
import pytest
from PIL import Image, ImageOps

from mm_assets.core.dedup.exact import hash_samples
from mm_assets.core.dedup.hamming import plan, radius_pairs
from mm_assets.core.dedup.hashing import perceptual_hashes
from mm_assets.core.dedup.near import near_duplicate_groups, star_groups
from mm_assets.core.records import Sample


def planted(n: int, seed: int) -> np.ndarray:
    """Random 64-bit hashes, a third of them copies of others with 1-10 bits flipped, and
    some exact repeats."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64, endpoint=True).view(np.uint64)
    k = n // 3
    src = rng.integers(0, n - k, k)
    noise = np.zeros(k, np.uint64)
    for _ in range(10):  # up to 10 distinct bits, fewer where draws collide
        noise |= np.where(rng.random(k) < 0.5, np.uint64(1) << rng.integers(0, 64, k).astype(
            np.uint64), np.uint64(0))
    codes[n - k:] = codes[src] ^ noise
    codes[: n // 50] = codes[n // 50: 2 * (n // 50)]
    return codes


def numpy_pairs(codes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    out = set()
    for i in range(len(codes)):
        d = np.bitwise_count(codes[i + 1:] ^ codes[i])
        out |= {(i, i + 1 + int(j)) for j in np.flatnonzero(d <= radius)}
    return out


def test_index_pairs_equal_brute_force_on_50k_hashes():
    codes = planted(50_000, seed=0)
    assert plan(len(codes), 6)[0] == "index"  # what auto picks at the default radius
    for radius in (3, 6, 8):
        got = radius_pairs(codes, radius, "index")
        want = radius_pairs(codes, radius, "brute")
        assert len(got[0]) > 3_000
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), radius


@pytest.mark.parametrize("radius", [0, 1, 6, 12])
def test_index_and_faiss_equal_a_numpy_reference(radius):
    codes = planted(1_500, seed=radius)
    want = numpy_pairs(codes, radius)
    for method in ("index", "brute"):
        i, j = radius_pairs(codes, radius, method)
        assert set(zip(i.tolist(), j.tolist(), strict=True)) == want, method
        assert len(i) == len(want)  # each pair once


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="radius"):
        radius_pairs(np.zeros(3, np.uint64), 64)
    with pytest.raises(ValueError, match="1-D"):
        radius_pairs(np.zeros(3, np.float32), 2)
    with pytest.raises(ValueError, match="method"):
        radius_pairs(np.zeros(3, np.uint64), 2, "fast")


def table(rows: dict[str, list[int]], flips: dict[str, list[int]] | None = None):
    keys = sorted(rows)
    data = {"key": keys, "phashes": [rows[k] for k in keys]}
    if flips is not None:
        data["phashes_flip"] = [flips[k] for k in keys]
    return pl.DataFrame(data, schema={"key": pl.Utf8, "phashes": pl.List(pl.Int64),
                                      **({"phashes_flip": pl.List(pl.Int64)} if flips else {})})


def test_star_grouping_does_not_chain():
    # a ~ b (4 bits), b ~ c (4 bits), a !~ c (8 bits): components would merge all three.
    a, b, c = 0, 0b1111, 0b1111_1111
    groups = near_duplicate_groups(table({"a": [a], "b": [b], "c": [c], "d": [(2**20 - 1) << 40]}), 5)
    assert groups.to_dict(as_series=False) == {
        "key": ["a", "b"], "near_group": ["a", "a"], "near_group_size": [2, 2]}


def test_members_are_within_radius_of_their_leader():
    codes = planted(5_000, seed=3).view(np.int64)
    t = table({f"k{i:05d}": [int(c)] for i, c in enumerate(codes)})
    radius = 6
    g = near_duplicate_groups(t, radius)
    by_key = dict(zip(t["key"].to_list(), codes.view(np.uint64).tolist(), strict=True))
    assert g["near_group"].n_unique() > 300
    for k, lead in zip(g["key"], g["near_group"], strict=True):
        assert (by_key[k] ^ by_key[lead]).bit_count() <= radius
        assert lead <= k
    # a near pair may be split between leaders, but never both left out
    grouped = set(g["key"].to_list())
    i, j = radius_pairs(codes, radius, "brute")
    keys = t["key"].to_list()
    assert all(keys[x] in grouped or keys[y] in grouped for x, y in zip(i, j, strict=True))
    same = near_duplicate_groups(t, radius, method="brute")
    assert g.equals(same)


def test_multi_image_samples_and_exact_repeats():
    t = table({"a": [5, 1 << 50], "b": [1 << 50], "c": [5], "d": [(1 << 50) | 3], "e": [99 << 30]})
    g = near_duplicate_groups(t, 2)
    assert dict(zip(g["key"], g["near_group"], strict=True)) == {
        "a": "a", "b": "a", "c": "a", "d": "a"}


def test_star_groups_direct():
    # sample 0 holds item 0; items 0~1, 1~2; samples 1, 2 hold items 1, 2
    s, it = np.array([0, 1, 2]), np.array([0, 1, 2])
    got = star_groups(3, (s, it), 3, (np.array([0, 1]), np.array([1, 2])))
    assert got.tolist() == [0, 0, 2]


def test_duplicate_keys_raise():
    t = pl.DataFrame({"key": ["a", "a"], "phashes": [[1], [2]]})
    with pytest.raises(ValueError, match="duplicate sample keys"):
        near_duplicate_groups(t, 3)


def photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.random((6, 8, 3)) * 255
    return Image.fromarray(base.astype(np.uint8)).resize((160, 120), Image.Resampling.BICUBIC)


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_flip_hash_is_the_phash_of_the_mirrored_image():
    import imagehash

    for seed in range(20):
        im = photo(seed)
        ph, flip = perceptual_hashes(im.convert("RGBA"))
        assert ph == int.from_bytes(np.packbits(imagehash.phash(im).hash.ravel()).tobytes(),
                                    "big", signed=True)
        mirrored = int.from_bytes(np.packbits(imagehash.phash(ImageOps.mirror(im)).hash.ravel()
                                              ).tobytes(), "big", signed=True)
        assert ((flip ^ mirrored) & (2**64 - 1)).bit_count() <= 2
        assert ((ph ^ flip) & (2**64 - 1)).bit_count() > 10


def test_flip_invariance_finds_mirrored_copies_only_when_asked():
    images = {f"p{i}": photo(i) for i in range(6)}
    images["p0_mirror"] = ImageOps.mirror(images["p0"])
    images["p3_mirror"] = ImageOps.mirror(images["p3"])
    turns = [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}]
    t = hash_samples([Sample(k, turns, [png(im)], ["png"]) for k, im in images.items()],
                     10**8)
    plain = near_duplicate_groups(t, 6)
    flipped = near_duplicate_groups(t, 6, flip=True)
    assert plain.height == 0
    assert dict(zip(flipped["key"], flipped["near_group"], strict=True)) == {
        "p0": "p0", "p0_mirror": "p0", "p3": "p3", "p3_mirror": "p3"}
    with pytest.raises(ValueError, match="phashes_flip"):
        near_duplicate_groups(t.drop("phashes_flip"), 6, flip=True)


def test_pairs_are_sorted_and_unique():
    codes = planted(4_000, seed=9)
    i, j = radius_pairs(codes, 5)
    pairs = list(zip(i.tolist(), j.tolist(), strict=True))
    assert len(pairs) > 100
    assert pairs == sorted(set(pairs)) and all(a < b for a, b in pairs)


def test_a_corpus_without_images_has_no_near_groups():
    import polars as pl

    from mm_assets.core.dedup.near import near_duplicate_groups

    hashes = pl.DataFrame({"key": ["a", "b"], "phashes": [[], []]},
                          schema={"key": pl.Utf8, "phashes": pl.List(pl.Int64)})
    assert near_duplicate_groups(hashes, 8).height == 0
