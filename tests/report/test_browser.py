"""The HTML report in a real headless browser (Debian's chromium, installed
by ``make browser``, which ``make test`` runs): the page of the sgx2-rfc
no-escalation trace loads with no console errors and its script runs, the
permission map has a row per ELRANGE page and a column per step, and a
screenshot is written (``build/report-sgx2-rfc--no-escalation.png``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sgxsim.check import runner
from sgxsim.check.scope import Scope
from sgxsim.report import render_trace, trace_actions, trace_data, write_run

ROOT = Path(__file__).resolve().parents[2]
# The page reports its own errors where --dump-dom can see them.
CATCH = """<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message)); });
window.addEventListener('unhandledrejection', function (e) { window.__errors.push(String(e.reason)); });
(function () { var orig = console.error; console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, ' ')); orig.apply(console, arguments); }; })();
window.addEventListener('load', function () {
  setTimeout(function () {
    document.documentElement.setAttribute('data-errors', JSON.stringify(window.__errors));
  }, 0);
});
</script>"""


def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed: run `make browser` (make test does)")
    return exe


def browse(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp / 'profile'}", *extra,
         page.as_uri()], capture_output=True, text=True, timeout=120)


class Cells(HTMLParser):
    """Counts what the map is made of in the DOM the browser produced."""

    def __init__(self):
        super().__init__()
        self.rows: list[int] = []  # td.cell per tr[data-offset]
        self.head_steps: list[int] = []
        self.attrs: dict[str, str] = {}
        self.in_head = False
        self.detail = ""
        self._detail = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.attrs = a
        if tag == "body":
            self.attrs.update({f"body-{k}": v or "" for k, v in a.items()})
        if tag == "thead":
            self.in_head = True
        if tag == "th" and self.in_head and "data-step" in a:
            self.head_steps.append(int(a["data-step"]))
        if tag == "tr" and "data-offset" in a:
            self.rows.append(0)
        if tag == "td" and "cell" in (a.get("class") or "").split() and self.rows:
            self.rows[-1] += 1
        if a.get("id") == "detail":
            self._detail = True

    def handle_endtag(self, tag):
        if tag == "thead":
            self.in_head = False

    def handle_data(self, data):
        if self._detail:
            self.detail += data


@pytest.fixture(scope="module")
def results():
    scope = Scope()
    return runner.check(lambda d: runner.make_model(d, scope), ["sgx2-rfc"], ["no-escalation", "w-xor-x"],
                        depth=4)


@pytest.fixture(scope="module")
def report(tmp_path_factory, results):
    out = tmp_path_factory.mktemp("html")
    write_run(out, results, lambda d: runner.make_model(d, Scope()))
    r = next(x for x in results if x["property"] == "no-escalation")
    assert r["verdict"] == "violated"
    return out, len(r["trace"])


def test_trace_page_loads_without_errors_and_maps_every_page_and_step(report, tmp_path):
    out, nsteps = report
    page = out / "sgx2-rfc--no-escalation.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<link" not in text  # self-contained
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("<head>", "<head>" + CATCH, 1))
    r = browse(probe, tmp_path, "--dump-dom", "--virtual-time-budget=2000")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", r.stderr), r.stderr[-2000:]
    dom = Cells()
    dom.feed(r.stdout)
    assert dom.attrs.get("data-errors") == "[]", dom.attrs
    assert dom.attrs.get("body-data-ready") == "1"  # the page's script ran to its end
    # A row per ELRANGE page (8 in the default scope), a column per step
    # (and one for the initial state).
    assert dom.rows == [nsteps + 1] * 8
    assert dom.head_steps == list(range(nsteps + 1))
    # The script selected the violating step and listed its decisions.
    assert f"Step {nsteps}: store(offset=0)" in dom.detail and "no-escalation:" in dom.detail


def test_screenshot_of_the_sgx2_rfc_no_escalation_trace(report, tmp_path):
    out, _ = report
    shot = ROOT / "build" / "report-sgx2-rfc--no-escalation.png"
    shot.parent.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    r = browse(out / "sgx2-rfc--no-escalation.html", tmp_path, f"--screenshot={shot}",
               "--window-size=1400,1100", "--hide-scrollbars")
    assert r.returncode == 0, r.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_index_page_links_every_trace(report, tmp_path):
    out, _ = report
    text = (out / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', text)
    assert sorted(links) == ["sgx2-rfc--no-escalation.html", "sgx2-rfc--w-xor-x.html"]
    assert all((out / x).is_file() for x in links)
    r = browse(out / "index.html", tmp_path, "--dump-dom")
    assert r.returncode == 0 and 'id="matrix"' in r.stdout


FORK_WX = """
design = "linux-6.0"
property = "w-xor-x"
expect = "violated"
at_step = 7
[scope]
pages = 1
processes = 2
[[step]]
action = "add_pages"
offset = 0
source = "image"
type = "REG"
perms = "RWX"
[[step]]
action = "init"
[[step]]
action = "mmap"
proc = "parent"
offset = 0
length = 0x1000
prot = "RW"
[[step]]
action = "fork"
[[step]]
action = "mprotect"
proc = "child"
offset = 0
length = 0x1000
prot = "RX"
[[step]]
action = "store"
proc = "parent"
offset = 0
[[step]]
action = "load"
proc = "child"
offset = 0
"""


class Views(HTMLParser):
    """Per view heading (tr.view) the cells of its rows: (text, absent)."""

    def __init__(self):
        super().__init__()
        self.views: dict[str, list[list[tuple[str, bool]]]] = {}
        self._view = ""
        self._cell: list | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "tr" and "view" in cls:
            self._view = a["data-view"]
            self.views[self._view] = []
        elif tag == "tr" and "data-offset" in a:
            assert a.get("data-view") == self._view
            self.views[self._view].append([])
        elif tag == "td" and "cell" in cls:
            self._cell = ["", "absent" in cls]
            self.views[self._view][-1].append(self._cell)

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data


def test_fork_trace_maps_the_parent_and_the_child(tmp_path):
    """A trace with --processes 2 draws each process's map: the child's from
    the fork on, its PTE turning X while the parent's stays W."""
    from click.testing import CliRunner

    from sgxsim.cli import main

    (tmp_path / "fork-wx.toml").write_text(FORK_WX)
    page = tmp_path / "fork-wx.html"
    r = CliRunner().invoke(main, ["run", str(tmp_path / "fork-wx.toml"), "--html", str(page)])
    assert r.exit_code == 0, r.output
    b = browse(page, tmp_path, "--dump-dom", "--virtual-time-budget=2000")
    assert b.returncode == 0, b.stderr[-2000:]
    dom = Views()
    dom.feed(b.stdout)
    assert list(dom.views) == ["parent", "child"]
    parent, child = dom.views["parent"], dom.views["child"]
    assert len(parent) == len(child) == 8  # one row per ELRANGE page
    # Steps 0-3 come before the fork (step 4): no child yet.
    assert [absent for _, absent in child[0]] == [True] * 4 + [False] * 4
    assert not any(absent for row in parent for _, absent in row)
    # Page 0 after the last step: the parent's PTE grants W, the child's X.
    assert "PTERW" in parent[0][7][0].replace(" ", "") and "PTERX" in child[0][7][0].replace(" ", "")


def test_markup_in_the_trace_data_cannot_end_its_script_element(results, tmp_path):
    """The page's data is JSON inside a script element.  Text in it (a rule's
    detail can quote a file name or a scenario's words) holding "<!--<script>"
    would put the parser in its double-escaped state, where the element's own
    "</script>" no longer ends it and the rest of the page is swallowed; a
    "</script>" in it would end the element early.  Both must arrive as text."""
    r = next(x for x in results if x["property"] == "no-escalation")
    data = trace_data(runner.make_model("sgx2-rfc", Scope()), trace_actions(r["trace"]), "no-escalation")
    evil = "<!--<script>x</script>&amp;"
    last = data["columns"][-1]
    layer, rule, outcome, detail = last["decisions"][0]
    last["decisions"][0] = (layer, rule, outcome, f"{detail} {evil}")
    page = tmp_path / "evil.html"
    page.write_text(render_trace(data).replace("<head>", "<head>" + CATCH, 1))
    r = browse(page, tmp_path, "--dump-dom", "--virtual-time-budget=2000")
    assert r.returncode == 0, r.stderr[-2000:]
    dom = Cells()
    dom.feed(r.stdout)
    assert dom.attrs.get("data-errors") == "[]", dom.attrs
    assert dom.attrs.get("body-data-ready") == "1"  # the data parsed and the script ran
    assert evil in dom.detail  # shown as the text it is


# The browser's own resolution of every link of a page, written where
# --dump-dom can see it.
HREFS = """<script>
window.addEventListener('load', function () {
  var a = Array.prototype.map.call(document.querySelectorAll('a[href]'), function (x) { return x.href; });
  document.documentElement.setAttribute('data-hrefs', JSON.stringify(a));
});
</script>"""


def test_report_index_links_reach_pages_whose_names_have_hash_and_question_mark(tmp_path):
    # href="a#1.html" opened a (its fragment 1.html), href="q?x.html" opened
    # q (query x.html): the links are percent-encoded now.  The browser
    # resolves every link of the index, and each one loads its page.
    import json
    from urllib.parse import unquote, urlsplit

    from click.testing import CliRunner

    from sgxsim.cli import main

    scenario = ('design = "linux-6.0"\nproperty = "w-xor-x"\nexpect = "holds"\n\n'
                '[[step]]\naction = "mmap"\noffset = 0\nlength = 0x1000\nprot = "RW"\n')
    files = [tmp_path / n for n in ("a#1.toml", "q?x.toml", "100%.toml", "sp ace.toml")]
    for f in files:
        f.write_text(scenario)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["report", *map(str, files), "--out", str(out)])
    assert r.exit_code == 0, r.output
    probe = out / "probe.html"
    probe.write_text((out / "index.html").read_text().replace("<head>", "<head>" + HREFS, 1))
    r = browse(probe, tmp_path, "--dump-dom", "--virtual-time-budget=2000")
    assert r.returncode == 0, r.stderr[-2000:]
    dom = Cells()
    dom.feed(r.stdout)
    hrefs = json.loads(dom.attrs["data-hrefs"])
    assert len(hrefs) == 2 * len(files)  # the file's name and its verdict, per row
    targets = [Path(unquote(urlsplit(h).path)) for h in hrefs]
    assert all(urlsplit(h).fragment == "" and urlsplit(h).query == "" for h in hrefs), hrefs
    assert targets == [out / f"{f.stem}.html" for f in files for _ in (0, 1)]
    for h in hrefs[::2]:  # loading the link the browser resolved gives the file's page
        r = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", h],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "sgxsim trace: linux-6.0 / w-xor-x" in r.stdout, (h, r.stderr[-2000:])
