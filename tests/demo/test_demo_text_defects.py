"""The demo's text-only records written with a formatting defect carry exactly that flag, and
no other demo record is flagged (text_quality's default thresholds)."""

import json

from mm_assets.core.quality.text_flags import TextQualityConfig, flag_sample
from mm_assets.core.records import Sample
from mm_assets.demo.data import generate, load_truth


def test_each_defect_record_has_its_flag_and_the_rest_none(tmp_path):
    src = generate(tmp_path)
    truth = {r["id"]: r for r in load_truth(tmp_path).iter_rows(named=True)}
    cfg, got = TextQualityConfig(), {}
    for line in src.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # the demo's one bad JSON line
        images = [r["image"]] if isinstance(r.get("image"), str) else r.get("image", [])
        s = Sample(r["id"], r["conversations"], [b"x"] * len(images))
        got[r["id"]] = {f.flag for f in flag_sample(s, cfg)}
    want = {i: {t["defect"]} for i, t in truth.items() if t["defect"]}
    assert len(want) == 6
    assert {i: got[i] for i in want} == want
    others = {i: f for i, f in got.items() if f and i not in want and truth[i]["kind"] != "broken"}
    assert others == {}
