"""Dagster run configs are derived from the core dataclasses: same fields, defaults, checks."""

import dataclasses

import pytest
from dagster import Config, materialize

from mm_assets.config import DerivedConfig, dagster_config, field_docs
from mm_assets.core.semantic.semdedup import SemDedupConfig
from mm_assets.definitions import defs


def test_every_asset_config_is_derived_and_defaults_match_core():
    from mm_assets.assets import curated, dedup, merged, perplexity, raw, semantic, semdedup
    from mm_assets.jobs import IngestDropsConfig
    from resources.models import RephraseEndpoint

    derived = [raw.RawShardsConfig, dedup.HashConfig, dedup.ExactDupConfig,
               curated.CuratedConfig, semantic.ClustersConfig, semdedup.SemDedupAssetConfig,
               semdedup.PlanConfig, semdedup.RangeConfig,
               perplexity.PplScoresConfig, merged.MergedConfig, merged.RephrasedConfig,
               IngestDropsConfig, RephraseEndpoint]
    for cls in derived:
        assert issubclass(cls, DerivedConfig) and issubclass(cls, Config), cls
        for f in dataclasses.fields(cls.core_class):
            if f.name in cls.core_fields and f.default is not dataclasses.MISSING:
                got = cls.model_fields[f.name].default
                got = tuple(got) if f.name in cls.tuple_fields else got  # lists in run config
                assert got == f.default, (cls, f.name)
    # the drift the issue found: rephrased max_new_tokens was 128 here, 256 in core
    assert merged.RephrasedConfig().max_new_tokens == merged.RephrasedConfig().core() \
        .max_new_tokens == 256
    # every module-level dagster.Config in the asset modules is derived (none retyped),
    # except ppl_deciles' single switch, which has no core dataclass
    import inspect

    for mod in (raw, dedup, curated, semantic, semdedup, perplexity, merged):
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, Config) and obj.__module__ == \
                    mod.__name__:
                assert name == "PplDecilesConfig", f"{mod.__name__}.{name} is hand-written"


def test_generated_config_validates_through_the_dataclass():
    from mm_assets.assets.semdedup import SemDedupAssetConfig

    assert SemDedupAssetConfig().core() == SemDedupConfig()
    assert SemDedupAssetConfig(target_fraction=0.2).core().target_fraction == 0.2
    with pytest.raises(ValueError, match="epsilon must be in"):
        SemDedupAssetConfig(epsilon=3.0).core()
    assert "s >= 1 - epsilon" in SemDedupAssetConfig.model_fields["epsilon"].description


def test_launchpad_schema_has_the_core_defaults_and_a_bad_value_fails_the_run(tmp_path):
    """The code location's job shows core's defaults in the run config schema, and a value
    the core dataclass refuses fails the run naming it."""
    job = defs.resolve_implicit_global_asset_job_def()
    ops_field = job.run_config_schema.config_type.fields["ops"]
    sem = ops_field.config_type.fields["semdedup"].config_type.fields["config"].config_type
    assert sem.fields["epsilon"].default_value == SemDedupConfig().epsilon
    # the ranking is the ranges' setting (semdedup_range scores; semdedup only finishes)
    rng = ops_field.config_type.fields["semdedup_range"].config_type.fields["config"].config_type
    assert rng.fields["ranking"].default_value == SemDedupConfig().ranking
    assert "ranking" not in sem.fields

    @dataclasses.dataclass(frozen=True)
    class Tiny:
        """Attributes:
        k: clusters (> 0).
        """

        k: int = 3

        def __post_init__(self):
            if self.k <= 0:
                raise ValueError(f"k must be > 0, got {self.k}")

    TinyConfig = dagster_config(Tiny, "TinyConfig")
    from dagster import asset

    seen = []

    @asset
    def tiny(config: TinyConfig) -> None:
        seen.append(config.core())

    assert materialize([tiny]).success and seen == [Tiny(3)]
    res = materialize([tiny], run_config={"ops": {"tiny": {"config": {"k": 0}}}},
                      raise_on_error=False)
    assert not res.success
    err = res.get_step_failure_events()[0].step_failure_data.error
    while err.cause is not None:
        err = err.cause
    assert "k must be > 0, got 0" in err.message
    assert field_docs(Tiny) == {"k": "clusters (> 0)."}


def test_bad_field_names_are_refused():
    with pytest.raises(ValueError, match="unknown fields"):
        dagster_config(SemDedupConfig, "X", include=("nope",))
    with pytest.raises(ValueError, match="clash"):
        dagster_config(SemDedupConfig, "X", extra={"seed": (int, 0, "")})
