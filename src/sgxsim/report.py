"""``sgxsim report``: a self-contained HTML page per trace, and an index page
of a checker run (docs/report.md).

Per step, a map of the enclave's pages: what the VMA, the PTE, the EPCM and
the driver's maximum allow, what changed since the previous step, which
layer and rule decided, and the property's violation (or goal) at its step.
The page has its CSS and script inline and loads nothing: it works from a
file, with no server and no network.

The model is read only through its observation interface
(``model.page_map(state)``, ``model.page_labels()``: docs/internals.md) and
the replay's decisions.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sgxsim.check.explorer import replay
from sgxsim.check.model import Action
from sgxsim.check.properties import PROPERTIES
from sgxsim.check.runner import is_refusal
from sgxsim.outfile import write_output

LAYERS = ("vma", "pte", "epcm", "maximum")
LAYER_NAMES = {"vma": "VMA", "pte": "PTE", "epcm": "EPCM", "maximum": "driver maximum"}
SHORT = {"vma": "VMA", "pte": "PTE", "epcm": "EPCM", "maximum": "max"}


def _perm_letters(text: str) -> set[str]:
    """The R/W/X letters of a cell (``REG RW pending`` -> {R, W})."""
    for word in text.split():
        if word and set(word) <= set("RWX"):
            return set(word)
    return set()


def trace_data(model: Any, steps: list[Action], prop: str, *, expect: str = "", at_step: int = 0,
               reason: str = "") -> dict:
    """Replay ``steps`` on ``model`` and collect, per step (0 = the initial
    state), the page map, the decisions and whether ``prop`` fired.  An
    unknown ``prop``, or a step the model's scope does not offer, is a
    ValueError naming it."""
    if not isinstance(prop, str):
        raise TypeError(f"argument 'prop' must be a property's name (a str), not {type(prop).__name__}")
    if prop not in PROPERTIES:
        raise ValueError(f"argument 'prop': no property named {prop!r}; known: {', '.join(PROPERTIES)}")
    labels = model.page_labels() if hasattr(model, "page_labels") else {}

    def views(state: Any) -> dict[str, list]:
        if hasattr(model, "page_views"):
            return dict(model.page_views(state))
        return {"": model.page_map(state)}

    first = views(model.initial())
    cols = [{"step": 0, "action": "initial state", "decisions": [], "hit": None,
             "rows": next(iter(first.values())), "views": first}]
    for i, (action, decisions, _events, hits, state) in enumerate(
            replay(model, steps, [prop], states=True), 1):
        vs = views(state)
        cols.append({"step": i, "action": str(action), "hit": hits.get(prop),
                     "decisions": [(d.layer, d.rule, d.outcome, d.detail) for d in decisions],
                     # The indices of the decisions that made the step fail (is_refusal).
                     "refused": [j for j, d in enumerate(decisions) if is_refusal(d)],
                     "rows": next(iter(vs.values())), "views": vs})
    kind = PROPERTIES[prop].kind
    hit = next((c["step"] for c in cols if c["hit"]), None)
    verdict = ("violated" if hit else "holds") if kind == "safety" else ("reachable" if hit else "unreachable")
    return {"design": model.design, "property": prop, "kind": kind, "verdict": verdict, "at": hit,
            "expect": expect, "at_step": at_step, "reason": reason, "labels": labels, "columns": cols}


CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:20px;color:#1d2430;background:#fafbfc}
h1{font-size:20px;margin:0 0 4px}
.sub{color:#555;margin-bottom:12px}
.verdict{display:inline-block;padding:2px 8px;border-radius:4px;font-weight:600;color:#fff}
.verdict.bad{background:#c62828}.verdict.good{background:#2e7d32}.verdict.goal{background:#1565c0}
.legend{display:flex;gap:14px;flex-wrap:wrap;margin:10px 0;font-size:12px;color:#333}
.legend span{display:inline-flex;align-items:center;gap:4px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;border:1px solid #999}
table.map{border-collapse:separate;border-spacing:0;background:#fff;box-shadow:0 1px 3px rgba(0,0,0,.15)}
table.map th,table.map td{border-right:1px solid #e1e4e8;border-bottom:1px solid #e1e4e8;padding:4px 6px;
 vertical-align:top}
table.map thead th{background:#f1f3f6;font-weight:600;font-size:12px;text-align:left;max-width:150px;
 cursor:pointer;position:sticky;top:0}
table.map thead th .act{font-family:ui-monospace,Menlo,monospace;font-weight:400;display:block;
 word-break:break-all}
table.map th.page{background:#f6f8fa;text-align:left;font-family:ui-monospace,Menlo,monospace;
 font-size:12px;white-space:nowrap}
table.map th.page .lbl{display:block;font-family:system-ui,sans-serif;color:#666;font-weight:400}
td.cell{font-family:ui-monospace,Menlo,monospace;font-size:11px;min-width:92px;cursor:pointer}
.l{display:flex;justify-content:space-between;gap:6px;padding:0 3px;border-radius:2px;white-space:nowrap}
.l b{font-weight:400;color:#888}
.l.vma{background:#e8f0fe}.l.pte{background:#e6f4ea}.l.epcm{background:#fef7e0}.l.maximum{background:#f3e8fd}
.l.none{opacity:.45}
.l.chg{outline:2px solid #f9a825;font-weight:700}
.l.over{background:#ffcdd2;color:#b71c1c;font-weight:700}
tr.decided td{font-size:11px;background:#fcfcfd}
tr.view th{background:#e3e7ee;text-align:left;font-size:12px;position:sticky;left:0}
td.absent{color:#aaa;text-align:center}
.dec{display:block;margin-bottom:2px}
.dec.refusal{color:#b71c1c;font-weight:600}
table.map .col-hit{background:#fff5f5;border-left:3px solid #c62828;border-right:3px solid #c62828}
table.map thead th.col-hit{background:#ffebee;color:#b71c1c;border-top:3px solid #c62828}
table.map.goal .col-hit{background:#f3f8ff;border-color:#1565c0}
table.map.goal thead th.col-hit{background:#e3f2fd;color:#0d47a1}
table.map.goal .hitmsg{color:#0d47a1}
.col-sel{background:#fffde7}
thead th.col-sel{background:#fff59d}
#detail{margin-top:16px;background:#fff;padding:10px 14px;border:1px solid #e1e4e8;border-radius:4px;
 max-width:1100px}
#detail h2{font-size:15px;margin:0 0 6px}
#detail li{font-family:ui-monospace,Menlo,monospace;font-size:12px;margin:2px 0}
#detail li.refusal{color:#b71c1c}
.hitmsg{color:#b71c1c;font-weight:600}
.badge{display:inline-block;min-width:42px;text-align:center;border-radius:3px;padding:0 4px;margin-right:6px;
 background:#eceff1;color:#37474f;font-size:11px}
table.matrix{border-collapse:collapse;background:#fff}
table.matrix th,table.matrix td{border:1px solid #d0d7de;padding:4px 10px;text-align:left}
table.matrix td.violated{background:#ffebee}table.matrix td.holds{background:#e8f5e9}
table.matrix td.reachable{background:#e3f2fd}table.matrix td.unreachable{background:#f5f5f5}
"""

# Click a column (header or cell) to select it and see its decisions below;
# arrow keys move the selection.
SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('trace-data').textContent);
  var detail = document.getElementById('detail');
  var current = -1;
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c];
    });
  }
  function select(step) {
    if (step < 0 || step >= data.columns.length) { return; }
    current = step;
    var cells = document.querySelectorAll('[data-step]');
    for (var i = 0; i < cells.length; i++) {
      cells[i].classList.toggle('col-sel', Number(cells[i].getAttribute('data-step')) === step);
    }
    var col = data.columns[step];
    var out = '<h2>Step ' + step + ': ' + esc(col.action) + '</h2>';
    if (col.hit) { out += '<p class="hitmsg">' + esc(data.property) + ': ' + esc(col.hit) + '</p>'; }
    if (!col.decisions.length) { out += '<p>No layer recorded a decision (nothing was refused).</p>'; }
    out += '<ol>';
    for (var j = 0; j < col.decisions.length; j++) {
      var d = col.decisions[j];
      out += '<li class="' + (d[4] ? 'refusal' : '') + '"><span class="badge">' + esc(d[0]) + '</span>' +
        esc(d[1]) + ': ' + esc(d[2]) + (d[3] ? ': ' + esc(d[3]) : '') + '</li>';
    }
    detail.innerHTML = out + '</ol>';
  }
  document.getElementById('map').addEventListener('click', function (ev) {
    var el = ev.target.closest('[data-step]');
    if (el) { select(Number(el.getAttribute('data-step'))); }
  });
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'ArrowRight') { select(current + 1); }
    if (ev.key === 'ArrowLeft') { select(current - 1); }
  });
  select(data.at === null ? data.columns.length - 1 : data.at);
  document.body.setAttribute('data-ready', '1');
})();
"""


# Inside a script element the HTML parser looks for "</script", and after
# "<!--" and "<script" it stops looking for it (the escaped states), so no "<"
# may appear in the JSON there.  In JSON "<" occurs only inside strings, where
# \u003c means the same character; ">" and "&" likewise, for good measure.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_json(data: Any) -> str:
    """``data`` as JSON that can stand inside a ``<script>`` element as is."""
    return json.dumps(data).translate(_SCRIPT_SAFE)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _href(name: str) -> str:
    """A page's file name as a relative link: percent-encoded (a ``#`` or
    ``?`` in a file or design name would start the fragment or the query;
    ``a#1.html`` opened ``a``), then escaped for the attribute."""
    return _e(quote(name))


def _page(title: str, body: str, script: str = "") -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n"
            + (f"<script>{script}</script>\n" if script else "") + "</body></html>\n")


def _cell(row: Any, prev: Any) -> str:
    over = _perm_letters(row.pte) - (_perm_letters(row.maximum) if row.maximum else set()) \
        if row.pte and row.maximum else set()
    lines = []
    for layer in LAYERS:
        val = getattr(row, layer)
        if layer == "maximum" and row.resident == "swapped":
            val = f"{val} (EWB)"
        cls = ["l", layer]
        if not val:
            cls.append("none")
        if prev is not None and getattr(prev, layer) != getattr(row, layer):
            cls.append("chg")
        if layer == "pte" and over:
            cls.append("over")
        lines.append(f'<span class="{" ".join(cls)}" title="{_e(LAYER_NAMES[layer])}"><b>{SHORT[layer]}</b>'
                     f"{_e(val or '-')}</span>")
    return "".join(lines)


def render_trace(data: dict) -> str:
    """The HTML page of one trace (``trace_data``)."""
    cols = data["columns"]
    hit = data["at"]
    kind_cls = "bad" if data["verdict"] == "violated" else "goal" if data["verdict"] == "reachable" else "good"
    title = f"{data['design']} / {data['property']}"
    head = [f"<h1>sgxsim trace: {_e(title)}</h1>",
            f'<div class="sub"><span class="verdict {kind_cls}">{_e(data["verdict"])}'
            + (f" at step {hit}" if hit else "") + "</span> "
            + (f"&nbsp; the scenario expects {_e(data['expect'])}"
               + (f" at step {data['at_step']}" if data["at_step"] else "") if data["expect"] else "")
            + (f"<br>{_e(data['reason'])}" if data["reason"] else "") + "</div>",
            '<div class="legend">'
            '<span><i class="sw" style="background:#e8f0fe"></i>VMA: the mapping\'s protection</span>'
            '<span><i class="sw" style="background:#e6f4ea"></i>PTE: what the page table grants</span>'
            '<span><i class="sw" style="background:#fef7e0"></i>EPCM: type, permissions, state</span>'
            '<span><i class="sw" style="background:#f3e8fd"></i>max: the driver\'s maximum '
            "(vm_max_prot_bits)</span>"
            '<span><i class="sw" style="outline:2px solid #f9a825"></i>changed by this step</span>'
            '<span><i class="sw" style="background:#ffcdd2"></i>PTE beyond the maximum</span>'
            '<span><i class="sw" style="border:2px solid #c62828;background:#fff5f5"></i>'
            "where the property fired</span></div>"]
    th = ['<th class="page">page</th>']
    for c in cols:
        cls = ' class="col-hit"' if c["step"] == hit else ""
        th.append(f'<th data-step="{c["step"]}"{cls}>step {c["step"]}<span class="act">{_e(c["action"])}</span>'
                  + (f'<span class="hitmsg">{_e(data["property"])} {_e(data["verdict"])}</span>'
                     if c["step"] == hit else "") + "</th>")
    # One block of rows per process and enclave (a child's from the step
    # that forked it on); a single view needs no heading.
    names: list[str] = []
    for c in cols:
        names += [n for n in c.get("views", {"": c["rows"]}) if n not in names]
    body = []
    for name in names:
        shape = next(c.get("views", {"": c["rows"]})[name] for c in cols
                     if name in c.get("views", {"": c["rows"]}))
        if len(names) > 1:
            body.append(f'<tr class="view" data-view="{_e(name)}"><th class="view" '
                        f'colspan="{len(cols) + 1}">{_e(name)}</th></tr>')
        for r, row in enumerate(shape):
            label = data["labels"].get(row.offset, "explored page" if not data["labels"] else
                                       "explored page" if row.offset < min(data["labels"]) else "")
            tds = []
            prev = None
            for c in cols:
                rows = c.get("views", {"": c["rows"]}).get(name)
                cls = "cell col-hit" if c["step"] == hit else "cell"
                if rows is None:  # this process does not exist yet
                    tds.append(f'<td class="{cls} absent" data-step="{c["step"]}">-</td>')
                    prev = None
                    continue
                tds.append(f'<td class="{cls}" data-step="{c["step"]}">{_cell(rows[r], prev)}</td>')
                prev = rows[r]
            body.append(f'<tr data-offset="{row.offset:#x}" data-view="{_e(name)}"><th class="page">'
                        f'+{row.offset:#06x}<span class="lbl">{_e(label)}</span></th>{"".join(tds)}</tr>')
    decided = ['<th class="page">decided by</th>']
    for c in cols:
        ds = c["decisions"]
        refused = c.get("refused", [])
        first = ds[refused[0]] if refused else None
        shown = [first] if first else ds[:1]
        cls = "dec refusal" if first else "dec"
        txt = "".join(f'<span class="{cls}">{_e(d[0])}: {_e(d[1])}: {_e(d[2])}</span>'
                      for d in shown) or '<span class="dec">-</span>'
        more = f'<span class="dec">+{len(ds) - len(shown)} more</span>' if len(ds) > len(shown) else ""
        cls = ' class="col-hit"' if c["step"] == hit else ""
        decided.append(f'<td data-step="{c["step"]}"{cls}>{txt}{more}</td>')
    kind = "goal" if data["kind"] == "goal" else "safety"
    table = (f'<table class="map {kind}" id="map"><thead><tr>{"".join(th)}</tr></thead><tbody>{"".join(body)}'
             f'<tr class="decided">{"".join(decided)}</tr></tbody></table>')
    payload = {"property": data["property"], "at": hit,
               "columns": [{"action": c["action"], "hit": c["hit"],
                            "decisions": [list(d) + [j in c.get("refused", ())]
                                          for j, d in enumerate(c["decisions"])]}
                           for c in cols]}
    blob = script_json(payload)
    return _page(f"sgxsim: {title}", "\n".join(head) + table + '<div id="detail"></div>'
                 f'<script type="application/json" id="trace-data">{blob}</script>', SCRIPT)


BFS_NOTE = ("Every design against every property; (n) is the length of the shortest trace (click it for "
            "the trace's permission map); holds and unreachable are up to the depth bound.")
SIM_NOTE = ("Every design against every property by seeded random walks; (n) is the length of the shrunk "
            "trace (click it for the trace's permission map); a walk that finds nothing proves nothing.")


def render_index(results: list[dict], links: dict[tuple[str, str], str], note: str = BFS_NOTE) -> str:
    """The index page of a checker run: the design x property matrix, each
    cell with a trace linking to its page; ``note`` says how to read it."""
    designs = list(dict.fromkeys(r["design"] for r in results))
    props = list(dict.fromkeys(r["property"] for r in results))
    cell = {(r["design"], r["property"]): r for r in results}
    rows = ["<tr><th>design</th>" + "".join(f"<th>{_e(p)}</th>" for p in props) + "</tr>"]
    for d in designs:
        tds = []
        for p in props:
            r = cell.get((d, p))
            if r is None:
                tds.append("<td></td>")
                continue
            text = r["verdict"] + (f" ({len(r['trace'])})" if r["trace"] else "")
            link = links.get((d, p))
            inner = f'<a href="{_href(link)}">{_e(text)}</a>' if link else _e(text)
            tds.append(f'<td class="{_e(r["verdict"])}">{inner}</td>')
        rows.append(f"<tr><th>{_e(d)}</th>{''.join(tds)}</tr>")
    body = (f'<h1>sgxsim check</h1><p class="sub">{_e(note)}</p>'
            f'<table class="matrix" id="matrix">{"".join(rows)}</table>')
    return _page("sgxsim check", body)


REPORT_NOTE = ("One row per scenario file, replayed as written (nothing is searched): the verdict the file's "
               "property gives on the design, at the step that decides it (violated, reachable) or after "
               "the file's last step (holds, unreachable); click it for the file's permission map.")


def render_report_index(rows: list[dict]) -> str:
    """The index page of ``sgxsim report``: a row per scenario file (two
    files on the same design and property keep a row and a link each), its
    design, property, the verdict it expects (on ``expect_design``, the
    file's own design) and the one it gives (``at``:
    the step that decided it, 0 for none; ``steps``: the file's steps)."""
    head = "<tr><th>file</th><th>design</th><th>property</th><th>expected</th><th>verdict</th></tr>"
    body = [head]
    for r in rows:
        n = r["steps"]
        got = r["verdict"] + (f" at step {r['at']}" if r["at"] else f" after {n} step" + "s" * (n != 1))
        want = r["expect"] + (f" at step {r['at_step']}" if r["at_step"] else "") \
            + (f" on {r['expect_design']}" if r["expect_design"] != r["design"] else "")
        body.append(f'<tr><th><a href="{_href(r["page"])}">{_e(r["file"])}</a></th><td>{_e(r["design"])}</td>'
                    f'<td>{_e(r["property"])}</td><td>{_e(want)}</td>'
                    f'<td class="{_e(r["verdict"])}"><a href="{_href(r["page"])}">{_e(got)}</a></td></tr>')
    return _page("sgxsim report", f'<h1>sgxsim report</h1><p class="sub">{_e(REPORT_NOTE)}</p>'
                                  f'<table class="matrix" id="files">{"".join(body)}</table>')


def trace_actions(trace: Iterable[dict]) -> list[Action]:
    """The actions of a result's JSON trace (``runner.trace_of``)."""
    skip = ("action", "decisions", "events", "properties")
    return [Action(s["action"], tuple((k, v) for k, v in s.items() if k not in skip)) for s in trace]


def write_trace(path: Path, model: Any, steps: list[Action], prop: str, **kw: Any) -> Path:
    """The page of one trace; a file that cannot be written is an
    :class:`~sgxsim.outfile.OutputError` naming it."""
    return write_output(path, render_trace(trace_data(model, steps, prop, **kw)))


def write_run(out_dir: Path, results: list[dict], factory: Callable[[str], Any],
              note: str = BFS_NOTE) -> Path:
    """A page per trace of ``results`` and ``index.html``; returns the index."""
    links = {}
    for r in results:
        if not r["trace"]:
            continue
        name = f"{r['design']}--{r['property']}.html"
        write_trace(out_dir / name, factory(r["design"]), trace_actions(r["trace"]), r["property"],
                    expect=r["verdict"], at_step=len(r["trace"]), reason=r.get("reason", ""))
        links[(r["design"], r["property"])] = name
    return write_output(out_dir / "index.html", render_index(results, links, note))
