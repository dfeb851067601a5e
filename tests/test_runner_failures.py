"""What a failed partition stops (found by a fresh-user tryout: a mining recipe with a typo
stopped the documents, every mixture and the report, and nothing said what did not run)."""

from types import SimpleNamespace

from mm_assets import runner
from mm_assets.runner import RunSummary, _run_layers


def fake_materialize(fail: set):
    calls = []

    def materialize(assets, selection, instance, resources, run_config, raise_on_error,
                    partition_key=None, tags=None):
        calls.append((tuple(selection), partition_key))
        ok = partition_key not in fail
        return SimpleNamespace(success=ok, run_id=f"r{len(calls)}",
                               get_step_failure_events=list,
                               asset_materializations_for_node=lambda n: [])
    return materialize, calls


def run(monkeypatch, steps, fail):
    materialize, calls = fake_materialize(fail)
    monkeypatch.setattr(runner, "materialize", materialize)
    summary = RunSummary()
    _run_layers(None, {}, {}, summary, None, steps, "CRITICAL")
    return summary, calls


def test_a_failed_mining_recipe_fails_alone(monkeypatch):
    steps = [(["mined"], ["typo", "good"]), (["docs_curated"], ["d0"]),
             (["mixtures"], ["mix_a", "mix_b"]), (["report"], [None])]
    summary, calls = run(monkeypatch, steps, fail={"typo"})
    assert [k for _, k in calls] == ["typo", "good", "d0", "mix_a", "mix_b", None]
    assert len(summary.failed) == 1 and summary.failed[0].startswith("mined[typo]")
    assert summary.not_started == []


def test_a_failed_shard_stops_the_layers_after_it_and_lists_them(monkeypatch):
    steps = [(["raw_shards"], ["000000", "000001", "000002"]),
             (["exact_duplicates"], [None]), (["curated"], ["000000", "000001"]),
             (["report"], [None])]
    summary, calls = run(monkeypatch, steps, fail={"000001"})
    assert [k for _, k in calls] == ["000000", "000001", "000002"]  # its layer finishes
    assert summary.not_started == ["exact_duplicates", "curated [000000]", "curated [000001]",
                                   "report"]
    assert summary.interrupted is None and len(summary.failed) == 1
