"""What a gallery shows: the views, their defaults per asset, and the validated
:class:`SampleSpec` of ``mm-assets sample`` (see :mod:`mm_assets.browse.select`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from mm_assets.core.quality.text_flags import FLAGS

View = Literal["all", "kept", "unique", "removed", "cluster", "decile", "exact-groups",
               "near-groups", "flagged", "synthetic"]
VIEWS: tuple[str, ...] = get_args(View)
ASSET_VIEWS = {"raw_shards": "all", "image_hashes": "all", "curated": "kept",
               "semdedup": "unique", "embeddings": "cluster", "clusters": "cluster",
               "ppl_scores": "decile", "ppl_deciles": "decile",
               "exact_duplicates": "exact-groups", "quarantine": "removed",
               "text_quality": "flagged", "synthetic": "synthetic"}
DEFAULT_N = {"all": 48, "kept": 48, "unique": 48, "removed": 12, "cluster": 12, "decile": 4,
             "exact-groups": 12, "near-groups": 12, "flagged": 12, "synthetic": 24}
MAX_MEMBERS = 8  # samples shown per duplicate group


@dataclass(frozen=True, slots=True)
class SampleSpec:
    """What a gallery shows.

    Attributes:
        view: see :data:`VIEWS` (README "Looking at the data"); ``synthetic`` shows the
            rendered samples of the ``synthetic`` asset, one section per spec, with the answer
            overlaid on a second thumbnail (``source`` = one spec).
        n: samples per section (groups for the group views; for ``decile``: lowest and highest
            each); None = :data:`DEFAULT_N` of the view.
        seed: sampling seed.
        reason, cluster, space, decile, source, flag: filters (None = any). ``space`` is
            ``image`` or ``text`` (cluster ids are per space); ``flag`` a text-quality flag
            (:data:`~mm_assets.core.quality.text_flags.FLAGS`).
        shards: only samples of these raw shards (None = all).
        max_sections: sections shown at most (clusters, reasons, groups are sections).
    """

    view: View = "all"
    n: int | None = None
    seed: int = 0
    reason: str | None = None
    cluster: int | None = None
    space: str | None = None
    decile: int | None = None
    source: str | None = None
    flag: str | None = None
    shards: tuple[str, ...] | None = None
    max_sections: int = 64

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}; got {self.view!r}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.space not in (None, "image", "text"):
            raise ValueError(f"space must be image or text, got {self.space!r}")
        if self.decile is not None and not -1 <= self.decile <= 9:
            raise ValueError(f"decile must be in -1..9, got {self.decile}")
        if self.flag is not None and self.flag not in FLAGS:
            raise ValueError(f"flag must be one of {', '.join(FLAGS)}; got {self.flag!r}")

    @property
    def per_section(self) -> int:
        return self.n or DEFAULT_N[self.view]

    def describe(self) -> str:
        """``view=removed reason=semdedup seed=0 n=12`` (what the gallery header shows)."""
        parts = [f"view={self.view}"] + [f"{k}={getattr(self, k)}" for k in (
            "reason", "cluster", "space", "decile", "source", "flag")
            if getattr(self, k) is not None]
        return " ".join(parts + [f"seed={self.seed}", f"n={self.per_section}"])


def spec_for_asset(asset: str, view: str | None = None, **kw) -> SampleSpec:
    """The spec of ``mm-assets sample --asset ASSET [--view V] ...``: the asset's default view
    (:data:`ASSET_VIEWS`; ``removed`` when a reason is given, ``flagged`` when a flag is).

    Raises:
        ValueError: unknown asset or view (message lists the known ones).
    """
    if asset not in ASSET_VIEWS:
        raise ValueError(f"no sample view for asset {asset!r}; known: {', '.join(ASSET_VIEWS)}")
    if not view and kw.get("flag"):
        view = "flagged"
    if not view:
        view = "removed" if kw.get("reason") and asset not in ("exact_duplicates",) else \
            ASSET_VIEWS[asset]
    return SampleSpec(view=view, **kw)
