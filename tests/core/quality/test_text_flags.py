"""Text-quality flags against a labelled set built here, and on real shared instruction data.

The labelled set: for each flag, defective answers written to show exactly that defect, and
clean turns (written ones plus real LLaVA/ScienceQA records). Precision and recall are computed
per flag over the whole set, so a flag that fires on another flag's examples loses precision.
"""

import json
import random
from collections import Counter, defaultdict

import pytest

from mm_assets.core.quality.text_flags import FLAGS, TextQualityConfig, flag_sample
from mm_assets.core.records import Sample

Q = "<image>\nWhat is shown in the picture?"
LONG = ("The photograph shows a wooden table by a window with a cup of coffee, a folded "
        "newspaper and a pair of reading glasses resting on top of the paper")
WORDS = ("time person year way day thing man world life hand part child eye woman place work "
         "week case point government company number group problem fact house garden river "
         "window table chair street city country story music picture table light water "
         "morning evening family friend school student teacher market bridge mountain forest "
         "small large old young early late green blue quiet bright warm cold open close near "
         "walks runs looks finds gives brings holds keeps turns shows plays moves lives stands "
         "quickly slowly often never always together").split()
MCQ = "<image>\nWhich animal is shown?\nA. cat\nB. dog\nC. horse\nD. rabbit"

CLEAN = [
    (Q, "A red bicycle leaning against a brick wall."),
    (Q, LONG + "."),
    ("How much is 12 times 7?", "12 × 7 = 84."),
    ("Solve for x: 2x + 3 = 11.", "Subtract 3 from both sides: $2x = 8$, so $x = 4$."),
    ("What does the sign cost?", "The sign says the coffee costs $3.50 and the muffin $2."),
    ("Write a Python function that adds two numbers.",
     "```python\ndef add(a, b):\n    return a + b\n```"),
    ("List three fruits.", "1) apple\n2) banana\n3) cherry"),
    (MCQ, "B"),
    (MCQ, "The answer is (C) horse."),
    (MCQ, "It is a dog."),
    (MCQ, "A is wrong; the answer is B."),
    ("Give the formula for the area of a circle.", r"The area is \(A = \pi r^2\)."),
    ("Describe the chart.", "The bar chart (values in %) shows growth from 10% to 25% [2020-2023]."),
    ("Is the sky blue?", "Yes"),
    ("Summarise the text.", "The author argues that cities should invest in public transport, "
     "since buses and trains move more people per lane than cars do."),
    ("Translate 'hello' into French.", "Bonjour."),
    ("What is the equation?", r"\begin{equation} E = mc^2 \end{equation}"),
    ("Write a haiku.", "An old silent pond\nA frog jumps into the pond\nSplash! Silence again"),
    ("What brand is it?", "The logo reads **ACME** in bold letters."),
    ("Who wrote Hamlet?", "William Shakespeare wrote Hamlet around 1600."),
    ("Explain briefly.", "Water boils at 100 °C at sea level; at altitude it boils lower."),
]

DEFECTS: dict[str, list[tuple[str, str] | Sample]] = {
    "template_tokens": [
        (Q, "A dog on the grass.<|im_end|>"), (Q, "<|im_start|>assistant\nA dog on the grass."),
        (Q, "A cat on a sofa.<|eot_id|>"), (Q, "[INST] describe [/INST] A cat on a sofa."),
        (Q, "<s> A bus on the road. </s>"), (Q, "A tree.<end_of_turn>"),
        (Q, "<|endoftext|>A tree in a field."), (Q, "Two birds.<|start_header_id|>user"),
        (Q, "A boat <<SYS>> be helpful <</SYS>>"), (Q, "A lamp on a desk.<|end_of_text|>"),
    ],
    "stray_image_token": [
        (Q, "<image>\nA dog on the grass."), (Q, "A cat sits there. <image>"),
        Sample("s1", [{"from": "human", "value": "<image>\n<image>\nCompare them."},
                      {"from": "gpt", "value": "They differ in colour."}], [b"x"]),
        Sample("s2", [{"from": "human", "value": "<image>\nWhat is it?"},
                      {"from": "gpt", "value": "A kite."}], []),
        (Q, "Here: <image> a kite in the sky."), (Q, "<image> <image>"),
        (Q, "The image <image> shows a house."), (Q, "A chart.\n<image>"),
        (Q, "<image>A car."), (Q, "Two <image> people."),
    ],
    "unbalanced_latex": [
        ("Solve.", "So $x = 4 and we are done."), ("Area?", r"It is \(\pi r^2 ."),
        ("Show it.", r"\[ a^2 + b^2 = c^2"), ("Integral?", r"\begin{align} x = 1"),
        ("Sum?", "The sum is $\\sum_i x_i$ and $y"), ("Root?", r"Take \sqrt{2}\) now."),
        ("Matrix?", r"\begin{pmatrix} 1 & 0 \end{bmatrix}"), ("Limit?", "$\\lim_{x\\to0} f"),
        ("Frac?", r"\(\frac{1}{2} and \(x\)"), ("Eq?", "We get $$x^2$$ and $y = 3"),
    ],
    "unbalanced_code": [
        ("Code?", "```python\nprint('hi')"), ("Code?", "Here:\n```\nls -la\n"),
        ("Code?", "```js\nconsole.log(1)\n```\n```"), ("Code?", "~~~\nSELECT 1;"),
        ("Code?", "Run:\n```bash\nmake"), ("Code?", "```\nx = 1\n```\nthen\n```\ny = 2"),
        ("Code?", "```c\nint main() {}"), ("Code?", "Use this:\n```\npip install x"),
        ("Code?", "```yaml\na: 1"), ("Code?", "Result:\n```text\nok"),
    ],
    "unbalanced_brackets": [
        ("Why?", "Because (as the chart shows the values rise."),
        ("Why?", "The list [a, b, c shows three items."),
        ("Why?", "The set {1, 2, 3 has three members."),
        ("Why?", "It rises) and then falls."), ("Why?", "Values (10, 20] are shown."),
        ("Why?", "See the note (page 3 for details."), ("Why?", "Use f(g(x) here."),
        ("Why?", "The dict {'a': 1 is valid."), ("Why?", "Items ((a) and (b) are listed."),
        ("Why?", "The range [0, 1)) is open."),
    ],
    "html_markdown": [
        (Q, "A dog<br>on the grass."), (Q, "<div>A cat on a sofa.</div>"),
        (Q, "Tom &amp; Jerry are shown."), (Q, "A&nbsp;bus on the road."),
        (Q, "It&#39;s a tree."), (Q, "**Answer: a lamp on a desk."),
        (Q, "See [](http://example.com) for more."), (Q, "<p>Two birds</p>"),
        (Q, "A house\n###\nwith a garden."), (Q, "<span style='x'>A car</span>"),
    ],
    "mojibake": [
        (Q, "The cafÃ© has a red door."), (Q, "It costs 5â‚¬ per person."),
        (Q, "He said â€œhelloâ€ to me."), (Q, "The naÃ¯ve approach fails."),
        (Q, "It is donâ€™t touch."), (Q, "The Ã¼ber cool car."),
        (Q, "Temperature is 20Â°C."), (Q, "The rÃ©sumÃ© is on the desk."),
        (Q, "Itâ€™s a sunny day."), (Q, "Ã‰cole is a French word."),
    ],
    "control_chars": [
        (Q, "A dog\x00 on the grass."), (Q, "A cat\x1b[0m on a sofa."), (Q, "A bus\x07."),
        (Q, "A tree\ufffd in a field."), (Q, "Two\x0b birds."), (Q, "A lamp\x7f on a desk."),
        (Q, "A boat\x08 at sea."), (Q, "A house\x0c with a garden."), (Q, "A car\x1f."),
        (Q, "Snow\x1e on a hill."),
    ],
    "repetition": [
        (Q, " ".join(["The cat is sitting on the mat."] * 12)),
        (Q, "\n".join(["- a red car parked outside"] * 15)),
        (Q, LONG + ". " + " ".join(["and the glasses are on the paper"] * 8) + "."),
        (Q, " ".join(["yes"] * 80)),
        (Q, "Step 1: add. " * 20 + "Done."),
        (Q, ("A man rides a horse across a wide field near the old barn while the sun sets "
             "behind the hills. ") * 5),
        (Q, " ".join(f"Item {i}: the value is the same as before and nothing changed." for i in
                     range(10))),
        (Q, "I think it is a dog. " * 15),
        (Q, "\n".join(["The answer is B."] * 20)),
        (Q, "Rewrite the answer:\n\n" * 25),
    ],
    "truncated": [
        (Q, LONG + " and the"), (Q, LONG + ", with a"), (Q, LONG + " next to the win"),
        (Q, LONG + " which is"), (Q, LONG + ","), (Q, LONG + " -"),
        (Q, LONG.replace("glasses", "glasses and a small plant") + " that was placed by"),
        (Q, "In the picture a woman walks her dog along the beach at sunset while waves roll "
            "in and a few gulls circle above the"),
        (Q, "The chart compares monthly revenue for the three regions and shows that the north "
            "grew fastest while the south stayed flat over the"),
        (Q, "There are four people standing near the bus stop, two of them are holding "
            "umbrellas because it seems to be rai"),
    ],
    "empty_answer": [
        (Q, ""), (Q, "   "), (Q, "\n\n"), (Q, "..."), (Q, "?"), (Q, "-"), (Q, ". ."),
        (Q, "\t"), (Q, "!!"), (Q, "--"),
    ],
    "answer_repeats_question": [
        (Q, "What is shown in the picture?"), ("Describe the image.", "Describe the image."),
        ("What colour is the car?", "what colour is the car"),
        ("How many people are in the photo?", "How many people are in the photo?"),
        ("Explain what the chart shows about revenue growth in 2020.",
         "Explain what the chart shows about revenue growth in 2020."),
        ("Is the door open?", "Is the door open?"),
        ("What is the man holding in his right hand?", "What is the man holding in his right hand"),
        ("Name the animal.", "Name the animal."),
        ("Read the text on the sign.", "Read the text on the sign."),
        ("Where was this photo taken?", "where was this photo taken"),
    ],
    "mc_no_option": [
        (MCQ, "E"), (MCQ, "It is a giraffe."), (MCQ, "I cannot tell."), (MCQ, "The animal is big."),
        ("Pick one.\nA. red\nB. blue\nC. green", "Yellow."),
        ("Pick one.\n(A) 1\n(B) 2\n(C) 3", "The answer is 4."),
        ("Choose:\nA) up\nB) down", "Sideways."), (MCQ, "None of them."), (MCQ, "A giraffe."),
        ("Which is larger?\nA. 10\nB. 20", "Neither is."), (MCQ, "An elephant."),
    ],
    "wrong_language": [
        (Q, "Ein roter Bus fährt über die Brücke in der Stadt, während die Sonne untergeht."),
        (Q, "Un chat noir dort sur le canapé du salon pendant que la pluie tombe dehors."),
        (Q, "Un perro marrón corre por la playa junto al mar mientras los niños juegan."),
        (Q, "Un uomo in bicicletta attraversa la piazza del paese vicino alla chiesa antica."),
        (Q, "Een rode fiets staat tegen de muur van het oude huis naast de bakkerij."),
        (Q, "Um homem caminha pela rua com o seu cão enquanto chove muito na cidade velha."),
        (Q, "Ett barn leker med en boll i parken medan föräldrarna sitter på bänken."),
        (Q, "Собака бежит по полю рядом с лесом, а солнце светит ярко над деревней."),
        (Q, "Mężczyzna jedzie rowerem przez most nad rzeką w starym mieście wieczorem."),
        (Q, "Bir kedi pencerenin önünde oturuyor ve dışarıdaki kuşları izliyor sessizce."),
    ],
    "length_ratio": [("Cat?", " ".join(random.Random(i).choices(WORDS, k=700)) + ".")
                     for i in range(10)],
}


def _sample(item, key: str) -> Sample:
    if isinstance(item, Sample):
        return item
    q, a = item
    return Sample(key, [{"from": "human", "value": q}, {"from": "gpt", "value": a}],
                  [b"x"] * q.count("<image>"))


def _pr(labelled: list[tuple[Sample, str | None]], cfg: TextQualityConfig):
    tp, fp, fn = Counter(), Counter(), Counter()
    for s, label in labelled:
        got = {f.flag for f in flag_sample(s, cfg)}
        for flag in FLAGS:
            if flag in got and flag == label:
                tp[flag] += 1
            elif flag in got:
                fp[flag] += 1
            elif flag == label:
                fn[flag] += 1
    return {f: (tp[f] / max(1, tp[f] + fp[f]), tp[f] / max(1, tp[f] + fn[f]), fp[f]) for f in FLAGS}


def _labelled() -> list[tuple[Sample, str | None]]:
    out = [(_sample(c, f"clean{i}"), None) for i, c in enumerate(CLEAN)]
    for flag, items in DEFECTS.items():
        out += [(_sample(it, f"{flag}{i}"), flag) for i, it in enumerate(items)]
    return out


def test_every_flag_has_examples():
    assert set(DEFECTS) == set(FLAGS)
    assert all(len(v) >= 10 for v in DEFECTS.values())


def test_precision_and_recall_per_flag_on_the_labelled_set():
    result = _pr(_labelled(), TextQualityConfig())
    low = {f: (round(p, 3), round(r, 3)) for f, (p, r, _) in result.items() if p < 0.95 or r < 0.9}
    assert not low, f"flags below P 0.95 / R 0.9: {low}"


def test_clean_turns_are_never_flagged():
    flagged = {c: [f.flag for f in flag_sample(_sample(c, "k"), TextQualityConfig())]
               for c in CLEAN}
    assert not {c: f for c, f in flagged.items() if f}


def test_spans_point_at_the_defect():
    s = _sample((Q, "A dog on the grass.<|im_end|>"), "k")
    (f,) = [f for f in flag_sample(s, TextQualityConfig()) if f.flag == "template_tokens"]
    assert s.conversations[f.turn]["value"][f.start:f.end] == "<|im_end|>"
    assert f.turn == 1


def test_language_check_can_be_widened_or_disabled():
    s = _sample((Q, DEFECTS["wrong_language"][0][1]), "k")
    assert "wrong_language" in {f.flag for f in flag_sample(s, TextQualityConfig())}
    for cfg in (TextQualityConfig(languages=("en", "de")), TextQualityConfig(languages=())):
        assert "wrong_language" not in {f.flag for f in flag_sample(s, cfg)}


def test_bad_config_names_the_value():
    with pytest.raises(ValueError, match="echo_jaccard"):
        TextQualityConfig(echo_jaccard=0)


def _shared_llava(shared) -> list[Sample]:
    base = shared / "llava"
    files = ["LLaVA/playground/data/eval/scienceqa/llava_test_CQM-A.json",
             "LLaMA-Factory/data/llava_instruct_100.json",
             "lmms-finetune/example_data/celeba_image_train.json",
             "lmms-finetune/example_data/single_image.json",
             "lmms-finetune/example_data/multi_images.json"]
    out = []
    for f in files:
        for r in json.loads((base / f).read_text()):
            n = sum(t["value"].count("<image>") for t in r["conversations"])
            out.append(Sample(str(r.get("id", len(out))), r["conversations"], [b"x"] * n,
                              source=f.rsplit("/", 1)[-1]))
    for line in (base / "LLaVA/playground/data/coco2014_val_gpt4_qa_30x3.jsonl").open():
        r = json.loads(line)
        out.append(Sample(str(r["id"]), [{"from": "human", "value": r["instruction"]},
                                         {"from": "gpt", "value": r["output"]}],
                          source="coco2014_val_gpt4_qa"))
    return out


def test_real_instruction_data_is_almost_never_flagged(shared):
    samples = _shared_llava(shared)
    assert len(samples) > 4500
    cfg = TextQualityConfig()
    flagged = defaultdict(list)
    for s in samples:
        for f in {f.flag for f in flag_sample(s, cfg)}:
            flagged[f].append(s.key)
    n_flagged = len({k for keys in flagged.values() for k in keys})
    assert n_flagged <= 0.01 * len(samples), dict(flagged)


def test_real_reference_text_flags_are_real_defects(shared):
    """Wikipedia articles and C4 documents as single answers: every flag names a defect that
    is really in the text (checked on its span), and the clean Wikipedia text is flagged at
    most once in 30 (the one known: a '($ today)' left by a removed template)."""
    ref = shared / "text_ref" / "LLaMA-Factory" / "data"
    wiki = [ln.strip() for ln in (ref / "wiki_demo.txt").open() if ln.strip()]
    c4 = [json.loads(ln)["text"] for ln in (ref / "c4_demo.jsonl").open()]
    cfg = TextQualityConfig()
    per_doc = [{f.flag for f in flag_sample(Sample("w", [{"from": "gpt", "value": t}]), cfg)}
               for t in wiki]
    assert sum(bool(f) for f in per_doc) <= 1, per_doc
    for text in c4:
        for f in flag_sample(Sample("c", [{"from": "gpt", "value": text}]), cfg):
            span = text[f.start:f.end]
            if f.flag == "control_chars":
                assert any(ord(c) < 32 or c == "\ufffd" or 0x7f <= ord(c) <= 0x9f for c in span)
            elif f.flag == "html_markdown":
                assert span.startswith(("<", "&", "[", "*", "#")) or span.strip(" #*") == ""
