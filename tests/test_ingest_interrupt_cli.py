"""``mm-assets ingest`` interrupted by Ctrl-C: one STOPPED line saying what was (not) ingested,
exit 130, the finished input's shards registered; the same command again completes the rest."""

from s3_fixtures import jsonl_drop
from typer.testing import CliRunner

from mm_assets.cli import app
from mm_assets.core.ingest import plan
from mm_assets.runner import get_instance


def test_ctrl_c_during_ingest_then_the_same_command_again(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MM_ASSETS_ROOT", str(tmp_path / "root"))
    for tag, n in (("a", 3), ("b", 5)):
        (tmp_path / f"{tag}.jsonl").write_bytes(jsonl_drop(tag, n))
    args = ["ingest", "--shard-size", "2", "--input", str(tmp_path / "a.jsonl"),
            "--input", str(tmp_path / "b.jsonl")]
    real, n = plan._Planner.write, [0]

    def write(self, lines, header):  # Ctrl-C once a's 2 shards and 1 of b's are written
        if n[0] == 3:
            raise KeyboardInterrupt
        n[0] += 1
        return real(self, lines, header)

    monkeypatch.setattr(plan._Planner, "write", write)
    cli = CliRunner()
    r = cli.invoke(app, args)
    assert r.exit_code == 130, r.output
    assert ("STOPPED: ingest interrupted: a.jsonl ingested (2 new shard(s)); NOT ingested: "
            "b.jsonl (1 partial shard manifest(s) removed)") in r.output
    assert sorted(get_instance().get_dynamic_partitions("shards")) == ["000000", "000001"]
    monkeypatch.undo()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MM_ASSETS_ROOT", str(tmp_path / "root"))
    again = cli.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "a.jsonl: already ingested" in again.output
    assert "3 new shard(s): 000002, 000003, 000004" in again.output
    assert sorted(get_instance().get_dynamic_partitions("shards")) == [
        f"00000{i}" for i in range(5)]
