"""report.html: self-contained, data embedded once and safely, and it really renders in headless Chromium.

The browser tests load the page from disk in Debian's ``chromium`` (or $HARNESS_CHROMIUM) and read back
what the page's own script wrote on <html>: ``data-ready``, ``data-cells`` (cells drawn in the grid) and
``data-errors`` (uncaught errors), plus every console message Chromium logged. Skipped, saying why,
where no Chromium is installed (``apt-get install chromium``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from harness.report import render_html, render_run

FIXTURES = Path(__file__).parent.parent / "fixtures" / "results"
P1 = "v2.31.14>v2.31.14>v2.34.4,agent=v2.31.14"
P2 = "v2.31.14>v2.31.14>v2.34.4,agent=v2.34.4"
BROWSER_TIMEOUT_S = 60  # a cold Chromium start on a loaded CI machine takes a few seconds; this is the hang guard


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def embedded(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


def test_page_is_self_contained() -> None:
    page = render_html(load("mixed"))
    assert "default-src 'none'" in page  # the browser itself refuses any network access
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert page.count("<script") == 3  # the error hook, the data, the page script
    data = embedded(page)
    assert len(data["cells"]) == 10 and data["dropped"] == {}
    assert data["gate"]["blocking"] == load("mixed")["gate"]["blocking"]


def test_an_unfinished_run_is_not_said_to_be_going() -> None:
    """The page cannot know whether an unfinished run still runs or was killed; it says what the reports say."""
    assert embedded(render_html(load("partial")))["state"].startswith("has not finished (still going, or stopped")
    page = render_html(load("partial"))
    assert "the run is still going" not in page and '"the run " + D.state' in page


def test_text_from_a_run_cannot_break_out_of_the_data_block() -> None:
    results = load("mixed")
    evil = "</script><script>alert(1)</script><!--"
    results["cells"][0]["error"] = evil
    results["cells"][0]["timeline"][0]["text"] = evil
    page = render_html(results)
    assert evil not in page and page.count("</script>") == 3
    data = embedded(page)
    assert data["cells"][0]["error"] == evil
    tl = data["cells"][0]["tl"]
    assert any(len(e) > 3 and e[3].get("text") == evil for e in tl["e"])


def test_timelines_are_sorted_and_interned_without_losing_anything() -> None:
    results = load("mixed")
    cell = next(c for c in results["cells"] if c["id"] == f"claim_while_stream_down[{P1}]")
    data = embedded(render_html(results))
    tl = next(d for d in data["cells"] if d["id"] == cell["id"])["tl"]
    strings, events = tl["s"], tl["e"]
    interned = set(data["interned"])
    decoded = [{"ms": ms, "src": strings[src], "ev": strings[ev],
                **{k: (strings[v] if k in interned else v) for k, v in (rest[0] if rest else {}).items()}}
               for ms, src, ev, *rest in events]
    assert [e["ms"] for e in decoded] == sorted(e["ms"] for e in cell["timeline"])
    assert sorted(map(json.dumps, decoded)) == sorted(map(json.dumps, cell["timeline"]))
    assert any(e["ev"] == "proxy.fault" for e in decoded)


def test_over_budget_drops_plain_pass_timelines_first() -> None:
    results = load("mixed")
    size = len(re.search(r'id="data">(.*?)</script>', render_html(results), re.S).group(1))  # type: ignore[union-attr]
    data = embedded(render_html(results, budget=size - 1))
    assert data["dropped"] == {"PASS": 1}  # just enough: the first plain PASS cell in plan order
    assert [d["id"] for d in data["cells"] if d["tl"] is None] == [f"live_claim[{P1}]"]
    data = embedded(render_html(results, budget=1))  # nothing fits: every PASS and DEGRADED timeline goes
    assert data["dropped"] == {"PASS": 2, "DEGRADED": 1}
    for d in data["cells"]:
        if d["kind"] not in ("PASS", "DEGRADED"):
            assert d["tl"] is not None, d["id"]  # failures and surprises keep their evidence


def test_cached_cells_give_the_same_page_as_fresh_ones() -> None:
    results = load("mixed")
    first = render_html(results)
    assert render_html(results) == first  # cache hit
    edited = results["cells"][0]
    edited["verdict"] = "FAIL"  # edited in place: the fingerprint notices
    again = embedded(render_html(results))
    assert again["cells"][0]["verdict"] == "FAIL"
    assert embedded(render_html(copy.deepcopy(results)))["cells"][0] == again["cells"][0]


# ---- in a real browser ------------------------------------------------------------------------------------

def chromium_path() -> str | None:
    for name in (os.environ.get("HARNESS_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


needs_chromium = pytest.mark.skipif(chromium_path() is None, reason="no Chromium on PATH (Debian: apt-get install "
                                    "chromium; or set HARNESS_CHROMIUM): the page is not checked in a browser")


def open_in_chromium(url: str) -> tuple[str, list[str]]:
    """(the DOM after load, console messages). Chromium runs in its own process group, killed afterwards."""
    with tempfile.TemporaryDirectory(prefix="harness-chromium-") as profile:
        argv = [chromium_path() or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom", url]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=BROWSER_TIMEOUT_S)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # helpers (zygote, GPU, renderer) go with it
            proc.wait()
    console = [line for line in err.splitlines() if ":CONSOLE" in line]
    return out, console


def html_attrs(dom: str) -> dict[str, str]:
    m = re.search(r"<html([^>]*)>", dom)
    assert m is not None, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))


@needs_chromium
@pytest.mark.parametrize(("name", "cells"), [("mixed", 10), ("partial", 4), ("empty", 0)])
def test_page_renders_without_errors(tmp_path: Path, name: str, cells: int) -> None:
    run_dir = tmp_path / "reports" / f"20261203-000000-{name[:6]:0<6}"
    run_dir.mkdir(parents=True)
    render_run(run_dir, load(name), strict=True)
    dom, console = open_in_chromium((run_dir / "report.html").as_uri())
    attrs = html_attrs(dom)
    assert attrs.get("data-ready") == "1", attrs
    assert "data-errors" not in attrs, attrs
    assert console == []
    assert attrs["data-cells"] == str(cells)
    assert dom.count('class="c ') >= cells  # grid cells drawn (not-run ones too)
    if name == "partial":
        assert 'id="partial"' in dom and "Partial: 4 of 10 cells" in dom
        assert dom.count("k-NOT_RUN") >= 6


@needs_chromium
def test_a_cell_opens_with_details_and_timeline(tmp_path: Path) -> None:
    run_dir = tmp_path / "20261203-000000-aaaaaa"
    run_dir.mkdir()
    render_run(run_dir, load("mixed"), strict=True)
    surprise = f"claim_while_stream_down[{P2}]"
    dom, console = open_in_chromium((run_dir / "report.html").as_uri() + "#cell=" + quote(surprise))
    assert console == [] and "data-errors" not in html_attrs(dom)
    details = dom[dom.index('id="details"'):dom.index('id="findings"')]
    assert f'id="detail-id">{surprise.replace(">", "&gt;")}<' in details
    assert "SURPRISE (live FAIL, predicted PASS)" in details
    assert "verdict: live FAIL, predicted PASS" in details  # the differences
    assert 'id="repro">harness run --matrix fixtures/sample-matrix.yaml' in details
    assert '<svg class="tl"' in details and 'class="v-fault"' in details  # the cut, drawn across the lanes
    assert 'class="m-data"' in details  # SSE data frames
    assert "tr class=\"diff\"" in details  # facts the model got wrong are highlighted
