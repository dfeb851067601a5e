"""Static HTML of a gallery: one self-contained page (inline CSS, no script, no network) whose
images are relative links to ``thumbs/``. Every text from the data is HTML-escaped."""

from __future__ import annotations

from collections import Counter, defaultdict
from html import escape

CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,"Liberation Sans",sans-serif;background:#f3f4f6;color:#111827}
header{background:#111827;color:#f9fafb;padding:14px 24px;position:sticky;top:0;z-index:2}
header h1{font-size:18px;margin:0 0 4px}header .spec{font:12px ui-monospace,monospace;
color:#9ca3af}nav{padding:10px 24px;background:#fff;border-bottom:1px solid #e5e7eb;
display:flex;flex-wrap:wrap;gap:6px}nav a{font-size:12px;text-decoration:none;color:#1f2937;
background:#eef2ff;border:1px solid #c7d2fe;border-radius:12px;padding:2px 10px}
main{padding:8px 24px 40px}section{margin:18px 0}section>h2{font-size:16px;margin:0 0 2px}
.note{color:#4b5563;font-size:12.5px;margin:0 0 10px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px}
.row{display:flex;gap:14px;overflow-x:auto;padding-bottom:6px}.row .card{min-width:330px;
max-width:360px}.card{background:#fff;border:1px solid #e5e7eb;border-radius:10px;
overflow:hidden;display:flex;flex-direction:column;box-shadow:0 1px 2px rgba(0,0,0,.05)}
.card.rep{border:2px solid #2563eb}.imgs{background:#111827;display:flex;gap:2px;
justify-content:center;align-items:center;height:220px}.imgs img{max-height:220px;
max-width:100%;object-fit:contain;flex:1 1 0;min-width:0}.imgs.multi img{max-width:50%}
.noimg{height:34px;background:#e5e7eb;color:#6b7280;display:flex;align-items:center;
justify-content:center;font-size:12px;letter-spacing:.04em;text-transform:uppercase}
.body{padding:10px 12px;display:flex;flex-direction:column;gap:6px}
.key{font:12px ui-monospace,monospace;word-break:break-all;color:#111827;font-weight:600}
.badges{display:flex;flex-wrap:wrap;gap:4px}.b{font-size:11px;border-radius:4px;
padding:1px 6px;border:1px solid #d1d5db;background:#f9fafb;color:#374151}
.b.kept{background:#dcfce7;border-color:#86efac;color:#14532d}.b.removed{background:#fee2e2;
border-color:#fca5a5;color:#7f1d1d}.b.quarantined{background:#ffedd5;border-color:#fdba74;
color:#7c2d12}.b.rep{background:#dbeafe;border-color:#93c5fd;color:#1e3a8a}
dl{display:grid;grid-template-columns:max-content 1fr;gap:1px 8px;margin:0;font-size:12px}
dt{color:#6b7280}dd{margin:0;word-break:break-word}.mono{font-family:ui-monospace,monospace}
.partner{display:flex;gap:8px;align-items:center;background:#f9fafb;border:1px dashed #d1d5db;
border-radius:6px;padding:4px;font-size:12px}.partner img{height:56px;max-width:80px;
object-fit:cover;border-radius:4px}.conv{max-height:280px;overflow:auto;border-top:1px solid
#f3f4f6;padding-top:6px}.turn{margin:0 0 6px;white-space:pre-wrap;word-break:break-word;
font-size:12.5px}.role{font-size:10.5px;font-weight:700;text-transform:uppercase;
letter-spacing:.05em;margin-right:6px}.role.human{color:#2563eb}.role.gpt{color:#059669}
.role.system{color:#7c3aed}.sheet{display:flex;flex-wrap:wrap;gap:3px;background:#111827;
padding:6px;border-radius:8px;margin-bottom:10px}.sheet img{height:110px;width:110px;
object-fit:cover;border-radius:3px}
.b.flag{background:#fef3c7;border-color:#fcd34d;color:#78350f}
mark{background:#fde68a;color:inherit;border-radius:2px;box-shadow:0 0 0 1px #f59e0b}
.rates{background:#fff;border-bottom:1px solid #e5e7eb;padding:10px 24px;overflow-x:auto}
.rates h2{font-size:14px;margin:0 0 6px}.rates table{border-collapse:collapse;font-size:12px}
.rates th,.rates td{border:1px solid #e5e7eb;padding:3px 8px;text-align:right;
white-space:nowrap}.rates th:first-child,.rates td:first-child{text-align:left}
.rates th{background:#f9fafb;font-weight:600}.rates .sel{background:#fef3c7}
"""

GROUP_VIEWS = ("exact", "near-duplicate")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _b(text: str, cls: str = "") -> str:
    return f'<span class="b {cls}">{escape(text)}</span>'


def _fmt(v, nd: int = 3) -> str:
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _decisions(c: dict) -> list[tuple[str, str]]:
    """(label, escaped value) pairs of the card's decision list."""
    d = []
    if c.get("status"):
        d.append(("curated", escape(c["status"] + (f" ({c['reason']})" if c.get("reason")
                                                     else ""))))
    if c.get("exact_group"):
        d.append(("exact dup", escape(
            f"{c['exact_kind']} group {c['exact_group'][:10]} ({c['exact_group_size']} samples), "
            f"representative {c['exact_representative']}, action {c['exact_action']}")))
    if c.get("near_group"):
        d.append(("near dup", escape(f"pHash group {c['near_group']} "
                                     f"({c['near_group_size']} samples)")))
    if c.get("cluster") is not None:
        d.append(("cluster", escape(f"{c['space']} {c['cluster']} · distance to centroid "
                                    f"{_fmt(c['distance'])}")))
    if c.get("sem_unique") is False:
        d.append(("SemDeDup", "not scored (exact duplicate of its group's representative)"))
    elif c.get("sem_score") is not None:
        d.append(("SemDeDup", escape(_semdedup_text(c))))
    if c.get("ppl") is not None or c.get("decile") is not None:
        ppl = "unscored" if c.get("ppl") is None else f"{c['ppl']:.2f}"
        d.append(("perplexity", escape(f"{ppl} · decile {c.get('decile')}")))
    if c.get("text_flags"):
        d.append(("text flags", "<br>".join(escape(_flag_text(f)) for f in c["text_flags"])))
    if c.get("q_stage"):
        d.append(("quarantine", escape(f"{c['q_stage']}: {c['q_reason']} — {c['q_error']}")))
    d.append(("source", escape(c.get("source") or "")))
    d.append(("location", f'<span class="mono">{escape(c["location"])}</span>'))
    if c.get("input_location"):
        d.append(("input", f'<span class="mono">{escape(c["input_location"])}</span>'))
    return d


def _flag_text(f: dict) -> str:
    where = "whole sample" if f["turn"] < 0 else f"turn {f['turn']}"
    span = f", chars {f['start']}–{f['end']}" if f["end"] > f["start"] else ""
    return f"{f['flag']} (score {f['score']:g}; {where}{span})"


def highlight(text: str, spans: list[tuple[int, int, str]]) -> str:
    """``text`` HTML-escaped with each ``(start, end, label)`` character span wrapped in
    ``<mark title=label>``; overlapping spans merge, spans are clipped to the text."""
    merged: list[list] = []
    for a, b, label in sorted((max(0, a), min(len(text), b), lab) for a, b, lab in spans):
        if b <= a:
            continue
        if merged and a < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
            merged[-1][2] += [label] if label not in merged[-1][2] else []
        else:
            merged.append([a, b, [label]])
    out, pos = [], 0
    for a, b, labels in merged:
        out.append(escape(text[pos:a]))
        out.append(f'<mark title="{escape(", ".join(labels))}">{escape(text[a:b])}</mark>')
        pos = b
    out.append(escape(text[pos:]))
    return "".join(out)


def _turn(i: int, t: dict, flags: list[dict]) -> str:
    role = escape(str(t.get("from", "")))
    spans = [(f["start"], f["end"], f["flag"]) for f in flags if f["turn"] == i]
    return (f'<p class="turn"><span class="role {role}">{role}</span>'
            f'{highlight(str(t.get("value", "")), spans)}</p>')


def _semdedup_text(c: dict) -> str:
    s, p = c["sem_score"], c.get("sem_partner")
    if c.get("sem_duplicate"):
        other = "also removed" if c.get("sem_partner_duplicate") else "kept"
        return f"removed: cosine {s:.4f} to {p} ({other})"
    text = "kept" + (f" (max cosine {s:.4f} to {p})" if p else " (first of its cluster)")
    if c.get("sem_removes"):
        text += f"; removes {c['sem_removes']}"
    return text


def _images(c: dict) -> str:
    imgs = c["images"]
    if not imgs:
        label = "text-only sample" if c["in_shard"] else "not in any shard"
        return f'<div class="noimg">{label}</div>'
    tags = [f'<img src="{escape(i["src"])}" loading="eager" alt="{escape(c["key"])}" '
            f'title="{"answer overlaid · " if i.get("overlay") else ""}'
            f'{i["width"]}×{i["height"]}">' if i["src"] else
            '<div class="noimg">image not decodable</div>' for i in imgs]
    return f'<div class="imgs{" multi" if len(imgs) > 1 else ""}">{"".join(tags)}</div>'


def render_card(c: dict) -> str:
    """One sample card: thumbnails, key, badges, decisions, SemDeDup partner, full text."""
    status = c.get("status") or ""
    badges = [_b(status + (f": {c['reason']}" if c.get("reason") else ""), status)] \
        if status else []
    if c.get("q_reason"):
        badges.append(_b(f"quarantined: {c['q_reason']}", "quarantined"))
    if c.get("exact_representative") == c["key"]:
        badges.append(_b("representative", "rep"))
    if c.get("sem_duplicate"):
        badges.append(_b("SemDeDup duplicate", "removed"))
    if c.get("cluster") is not None:
        badges.append(_b(f"{c['space']} cluster {c['cluster']}"))
    if c.get("decile") is not None and c["decile"] >= 0:
        badges.append(_b(f"decile {c['decile']}"))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in _decisions(c))
    partner = ""
    if c.get("sem_duplicate") and c.get("sem_partner"):
        pimg = next((i["src"] for i in c["partner_images"] if i["src"]), None)
        ptag = f'<img src="{escape(pimg)}" alt="partner">' if pimg else ""
        partner = (f'<div class="partner">{ptag}<span>SemDeDup partner '
                   f'<span class="mono">{escape(c["sem_partner"])}</span> '
                   f'cos {c["sem_score"]:.4f}</span></div>')
    flags = c.get("text_flags") or []
    badges += [_b(f"flag: {f}", "flag") for f in dict.fromkeys(f["flag"] for f in flags)]
    turns = "".join(_turn(i, t, flags) for i, t in enumerate(c["conversations"]))
    conv = f'<div class="conv">{turns}</div>' if turns else ""
    rep = " rep" if c.get("exact_representative") == c["key"] else ""
    return (f'<article class="card{rep}" data-key="{escape(c["key"])}">{_images(c)}'
            f'<div class="body"><div class="key">{escape(c["key"])}</div>'
            f'<div class="badges">{"".join(badges)}</div><dl>{dl}</dl>{partner}{conv}'
            f'</div></article>')


def _section_note(title: str, cards: list[dict], counts: dict[str, int]) -> str:
    n = counts.get(title)
    note = f"showing {len(cards)} of {n:,}" if n is not None else f"{len(cards)} shown"
    if title.startswith(GROUP_VIEWS):
        acts = Counter(c.get("status") + (f" ({c['reason']})" if c.get("reason") else "")
                       if c.get("status") else "no curated decision yet" for c in cards)
        note += " · action taken: " + ", ".join(f"{k} ×{v}" for k, v in sorted(acts.items()))
        if title.startswith("near"):
            note += (" · pHash near-duplicates are reported, not removed by this stage; "
                     "removals come from exact dedup / SemDeDup")
    return note


def render_html(cards: list[dict], title: str, spec: str, counts: dict[str, int],
                sections_left_out: int, root: str, top: str = "") -> str:
    """The gallery page for ``cards`` (dicts from ``gallery._card``), grouped by section;
    ``top``: HTML shown under the header (the flag rates of the ``flagged`` view)."""
    by_sec: dict[str, list[dict]] = defaultdict(list)
    for c in cards:
        by_sec[c["section"]].append(c)
    group_counts = counts.get("groups")
    nav, body = [], []
    for i, (sec, cs) in enumerate(by_sec.items()):
        nav.append(f'<a href="#s{i}">{escape(sec)} ({len(cs)})</a>')
        grouped = sec.startswith(GROUP_VIEWS)
        sheet = ""
        if " cluster " in sec:
            srcs = [im["src"] for c in cs for im in c["images"][:1] if im["src"]]
            sheet = ('<div class="sheet">' + "".join(
                f'<img src="{escape(s)}" alt="contact sheet">' for s in srcs) + "</div>"
                if srcs else "")
        body.append(f'<section id="s{i}"><h2>{escape(sec)}</h2>'
                    f'<p class="note">{escape(_section_note(sec, cs, counts))}</p>{sheet}'
                    f'<div class="{"row" if grouped else "grid"}">'
                    + "".join(render_card(c) for c in cs) + "</div></section>")
    extra = f" · {sections_left_out} more sections not shown" if sections_left_out else ""
    groups = f" · {group_counts:,} groups in total" if group_counts is not None else ""
    h1 = title[: -len(spec)].rstrip(" ·") if title.endswith(spec) and title != spec else title
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(h1)}</h1><div class=spec>{escape(spec)} · "
            f"{_plural(len(cards), 'sample')} in {_plural(len(by_sec), 'section')}{groups}"
            f"{extra} · root "
            f"{escape(root)}</div></header>{top}<nav>{''.join(nav)}</nav><main>"
            + ("".join(body) or '<p class="note">No sample matches.</p>')
            + "</main></body></html>")


def render_flag_rates(rates, selected: str | None = None) -> str:
    """The table of text-quality flag rates per source (rows: sources and all; columns: samples
    and, per flag present, flagged samples and their share) from
    :func:`mm_assets.browse.flags.flag_rates`; the ``selected`` flag's column is highlighted."""
    flags = [f for f in dict.fromkeys(rates["flag"].drop_nulls().to_list())]
    sources = list(dict.fromkeys(rates["source"].to_list()))
    samples = {s: n for s, n in zip(rates["source"], rates["samples"], strict=True)}
    got = {(s, f): n for s, f, n in rates.select("source", "flag", "flagged").iter_rows()}
    total = None if any(samples[s] is None for s in sources) else sum(samples.values())

    def cell(n: int, of: int | None, sel: bool) -> str:
        share = f" ({n / of:.1%})" if of else ""
        return f'<td{" class=sel" if sel else ""}>{n:,}{share}</td>'

    head = "".join(f'<th{" class=sel" if f == selected else ""}>{escape(f)}</th>' for f in flags)
    body = []
    for label, of, counts in [(s, samples[s], {f: got.get((s, f), 0) for f in flags})
                              for s in sources] + [
            ("all sources", total, {f: sum(got.get((s, f), 0) for s in sources)
                                    for f in flags})]:
        n = "?" if of is None else f"{of:,}"
        body.append(f"<tr><td>{escape(str(label))}</td><td>{n}</td>"
                    + "".join(cell(counts[f], of, f == selected) for f in flags) + "</tr>")
    if not flags:
        return ('<div class="rates"><h2>Text-quality flag rates per source</h2>'
                '<p class="note">No sample is flagged.</p></div>')
    return ('<div class="rates"><h2>Text-quality flag rates per source (samples flagged, share '
            'of the source\'s samples)</h2><table><tr><th>source</th><th>samples</th>'
            f'{head}</tr>{"".join(body)}</table></div>')
