# ruff: noqa: ISC004  (long texts split over lines inside tuples)
"""A labelled set of rewrites of assistant turns: faithful ones and the failures seen in
practice (prompt echo, truncation at the token limit, loops, lost hedges/negations, changed
numbers/options, dropped LaTeX/code, runaway length).

``PAIRS`` holds (original, faithful rewrite, [hand-written unfaithful rewrites]);
:func:`labelled` adds the mechanical failures a model produces for every pair and returns
``(original, rewrite, truncated_flag, is_bad, kind)`` rows.
"""

from mm_assets.core.text.rephrase import TEMPLATES

PAIRS: list[tuple[str, str, list[str]]] = [
    ("127.", "The answer is 127.", ["The answer is 128."]),
    ("About 127.", "Roughly 127.", ["The answer is: 127.", "127."]),
    ("Yes.", "Yes, that is correct.", []),
    ("No.", "No, it is not.", ["Yes."]),
    ("The answer is (B).", "The correct option is (B).", ["The correct option is (C)."]),
    ("B. The red car is parked behind the truck.",
     "B. The red car sits parked behind the truck.",
     ["A. The red car sits parked behind the truck."]),
    ("The image shows a man riding a bicycle along a beach at sunset. He is wearing a red "
     "jacket and there are seagulls flying overhead.",
     "A man in a red jacket rides a bicycle along the beach at sunset while seagulls fly "
     "overhead.", []),
    ("There is no dog in the picture; the animal on the sofa is a cat.",
     "The picture contains no dog: the animal on the sofa is a cat.",
     ["There is a dog in the picture; the animal on the sofa is a cat.",
      "The animal on the sofa is a cat, next to the dog in the picture."]),
    ("The bridge is approximately 450 meters long and was completed in 1932.",
     "Completed in 1932, the bridge is roughly 450 meters long.",
     ["Completed in 1932, the bridge is 450 meters long."]),
    ("The sign is not readable because the photo is blurry.",
     "The photo is blurry, so the sign isn't readable.",
     ["The photo is blurry, so the sign is readable.",
      "The sign is readable even though the photo is blurry."]),
    ("It is likely a golden retriever, based on its coat and size.",
     "Judging by its coat and size, it is probably a golden retriever.",
     ["Judging by its coat and size, it is a golden retriever."]),
    ("The chart shows revenue growing from $1.2M in 2019 to $3.4M in 2023.",
     "Revenue in the chart rises from $1.2M in 2019 to $3.4M in 2023.",
     ["Revenue in the chart rises from $1.2M in 2019 to $3.9M in 2023.",
      "Revenue in the chart rises steadily over the years."]),
    ("We have $x^2 + 2x + 1 = (x+1)^2$, so the only root is $x = -1$.",
     "Since $x^2 + 2x + 1 = (x+1)^2$, the only root is $x = -1$.",
     ["Since x squared plus 2x plus 1 is (x+1) squared, the only root is -1."]),
    ("Use this function:\n```python\ndef add(a, b):\n    return a + b\n```\nIt returns the sum.",
     "You can use the following function, which returns the sum:\n```python\ndef add(a, b):\n"
     "    return a + b\n```",
     ["You can use a function that adds two numbers and returns the sum."]),
    ("There are 3 apples and 2 oranges on the table.",
     "On the table there are 3 apples and 2 oranges.",
     ["On the table there are 3 apples and oranges."]),
    ("The temperature was around 20 degrees, so it was mild.",
     "With temperatures of about 20 degrees, it was mild.",
     ["With temperatures of 20 degrees, it was mild."]),
    ("The woman is holding an umbrella, but it is not raining.",
     "The woman holds an umbrella even though it isn't raining.",
     ["The woman holds an umbrella because it is raining."]),
    ("The train departs at 9:45 and arrives at 11:10.",
     "Departure is at 9:45 and arrival at 11:10.",
     ["Departure is at 9:45 and arrival at 11:00."]),
    ("This may be a residential area, since there are houses and a playground.",
     "Given the houses and a playground, this might be a residential area.",
     ["Given the houses and a playground, this is a residential area."]),
    ("The text on the whiteboard reads 'Meeting at 3pm'.",
     "The whiteboard says 'Meeting at 3pm'.", []),
    ("Nearly half of the respondents, 48%, said they never use public transport.",
     "Almost half of the respondents (48%) said they never use public transport.",
     ["Half of the respondents (48%) said they use public transport.",
      "48% of the respondents said they never use public transport."]),
    ("The boy is not wearing shoes and he has no hat.",
     "The boy wears neither shoes nor a hat.",
     ["The boy wears shoes and a hat."]),
    ("The photo was probably taken in winter, given the snow on the ground.",
     "Given the snow on the ground, the photo was likely taken in winter.",
     ["Given the snow on the ground, the photo was taken in winter."]),
    ("The total cost is 1,250 dollars: 1,000 for the flight and 250 for the hotel.",
     "The total comes to 1250 dollars, of which 1000 is the flight and 250 the hotel.",
     ["The total comes to 1250 dollars, of which 1000 is the flight."]),
    ("Option D is correct because the angle is obtuse.",
     "The angle is obtuse, so option D is correct.", []),
    ("The graph has two peaks, one in March and one in September.",
     "There are two peaks in the graph: March and September.", []),
    ("Water boils at 100 degrees Celsius at sea level.",
     "At sea level, water boils at 100 degrees Celsius.",
     ["At sea level, water boils at 90 degrees Celsius."]),
    ("A group of people is gathered around a table playing cards in a dimly lit room.",
     "In a dimly lit room, a group of people sits around a table playing cards.", []),
    ("The cat cannot reach the shelf because it is too high.",
     "The shelf is too high, so the cat can't reach it.",
     ["The shelf is high, but the cat can reach it."]),
    ("Step 1: add 5 and 7 to get 12. Step 2: multiply by 3 to get 36.",
     "First, 5 plus 7 gives 12; then multiplying by 3 gives 36.",
     ["First, 5 plus 7 gives 12; then multiplying gives the result."]),
    ("Paris is the capital of France.", "France's capital is Paris.", []),
    ("The building appears to be a church, judging by the steeple and stained glass.",
     "With its steeple and stained glass, the building seems to be a church.",
     ["With its steeple and stained glass, the building is a church."]),
    ("In the image, a red double-decker bus drives past a row of shops on a rainy street. "
     "Pedestrians with umbrellas wait at a crossing, and a cyclist in a yellow coat rides "
     "alongside the bus. The shop signs are reflected in the wet pavement, and the sky is "
     "overcast. On the left, a newsagent displays papers outside its door, and a woman is "
     "looking at them while holding a small child's hand. Further down the street, a "
     "traffic light shows red and several cars have stopped behind the bus.",
     "A red double-decker bus passes a row of shops on a rainy street, with a cyclist in a "
     "yellow coat riding beside it. Pedestrians holding umbrellas wait at a crossing, and the "
     "shop signs are reflected in the wet pavement beneath an overcast sky. To the left, a "
     "woman holding a small child's hand looks at the papers a newsagent displays outside its "
     "door. Further along, a red traffic light has stopped several cars behind the bus.",
     []),
    ("The result is roughly 3.14, close to pi.",
     "The result is about 3.14, near pi.", ["The result is 3.14, which is pi."]),
    ("None of the windows are open.", "All of the windows are closed; none is open.",
     ["All of the windows are open."]),
]

_SENT = "The image shows a man riding a bicycle along a beach at sunset."


def _truncate(text: str) -> str:
    """Cut mid-word at about a third, as a max_new_tokens limit does."""
    cut = max(1, int(len(text) * 0.35))
    while cut < len(text) - 1 and not text[cut].isalnum():
        cut += 1
    return text[:cut + 1].rstrip()


def _first_sentence(text: str) -> str:
    head = text.split(". ")[0].rstrip(".")
    return head + "."


def labelled() -> list[tuple[str, str, bool, bool, str]]:
    """Rows ``(original, rewrite, truncated_flag, is_bad, kind)``: every pair's faithful
    rewrite, its hand-written failures, and per pair an echoed prompt, a looped sentence, a
    run-away continuation and (for rewrites of 60+ characters) a mid-word cut, once with the
    ``finish_reason == "length"`` flag and once without."""
    rows = []
    template = TEMPLATES["clear"].split("{text}")[0]
    for i, (orig, good, bads) in enumerate(PAIRS):
        rows.append((orig, good, False, False, "good"))
        rows += [(orig, b, False, True, "hand") for b in bads]
        echo = template + orig if i % 2 else "Rewrite the answer:\n\n" * 6
        rows.append((orig, echo, False, True, "echo"))
        loop = " ".join([_first_sentence(good)] * 5) if len(good) > 30 else (good + " ") * 8
        rows.append((orig, loop, False, True, "repetition"))
        rows.append((orig, good + " " + " ".join(f"Moreover, scene {k} adds further context "
                                                 f"about the setting." for k in range(1, 6)),
                     False, True, "length"))
        if len(good) >= 60:
            rows.append((orig, _truncate(good), False, True, "truncated_text"))
            rows.append((orig, _truncate(good), True, True, "truncated_flag"))
    rows.append((_SENT * 3, _SENT * 3, False, False, "good"))  # repetitive original kept
    return rows
