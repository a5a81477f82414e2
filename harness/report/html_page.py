"""The report.html page: markup, CSS and script, with ``__TITLE__`` and ``__DATA__`` filled in by html.py.

Kept as a Python string so the page ships with the package (no data files to install) and stays one
file. The script is plain ES2019 with no libraries: it reads the embedded JSON (shape: html.py),
builds the page with DOM calls (text goes in through text nodes only, so nothing from a run can
inject markup), and draws timelines as inline SVG. Rules of the drawing, by event name:

- faults (``proxy.fault``, ``harness.fault``, ``pubsub.listener_lost``) — a red line across all lanes;
- kills and restarts (``agent.restart``, ``replica.*`` other than ready) — an orange line across all lanes;
- ``harness.mark`` (e.g. the quiet window) — a dashed grey line with its label;
- ``agent.reinit`` — a green triangle (grey for ``agent.duplicate``);
- SSE data frames (``sse.frame``/``proxy.frame`` of type data) — blue dots;
- claims (``control.claimed``, ``build.completed``, ``claim.published``, claim steps) — purple squares;
- harness steps — dark diamonds (red when the step breaks something: cut, kill, terminate, arm...);
- errors (``agent.error``) — red crosses; anything else — a small grey tick.
"""

from __future__ import annotations

CSS = r"""
:root{--pass:#1a7f37;--pass-bg:#cdebd6;--deg:#7d4e00;--deg-bg:#fde68a;--fail:#a40e26;--fail-bg:#fca5a5;
--sur:#6f2dbd;--sur-bg:#e4cffd;--err:#fff;--err-bg:#3b3f45;--unk:#24292f;--unk-bg:#c4ccd6;--line:#d0d7de;
--muted:#57606a;--blue:#0969da}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
header{background:#fff;border-bottom:1px solid var(--line);padding:12px 20px}
h1{font-size:20px;margin:0 0 6px}
h2{font-size:16px;margin:0 0 8px}
h3{font-size:14px;margin:14px 0 6px}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:12px}
.badge{display:inline-block;padding:1px 9px;border-radius:11px;font-weight:600;font-size:13px;margin-right:6px}
.gate-passed{background:var(--pass-bg);color:var(--pass)}
.gate-failed{background:#ffd7d5;color:var(--fail)}
.gate-incomplete{background:var(--deg-bg);color:var(--deg)}
.partial{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;font-weight:600;margin:8px 0;border-radius:6px}
.meta{color:var(--muted);font-size:12px;margin-top:4px}
main{display:grid;grid-template-columns:minmax(0,max-content) minmax(440px,1fr);gap:16px;padding:16px 20px;
align-items:start}
@media (max-width:1100px){main{grid-template-columns:minmax(0,1fr)}}
.panel{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px;min-width:0}
.wide{grid-column:1/-1}
#details{position:sticky;top:8px;max-height:calc(100vh - 16px);overflow:auto}
#gridbox{overflow:auto}
#gridbox>.legend,#gridbox>.note,#gridbox>.filters{contain:inline-size}  /* the table alone sets the width */
.filters{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin-bottom:8px}
.chip{border:1px solid var(--line);background:#fff;border-radius:14px;padding:2px 10px;cursor:pointer;font:inherit;
font-size:12px}
.chip.on{border-color:var(--blue);box-shadow:inset 0 0 0 1px var(--blue);background:#ddf4ff}
.chip .g{display:inline-block;width:18px;text-align:center;border-radius:3px;margin-right:4px}
select,input[type=search]{font:inherit;font-size:12px;padding:2px 6px;border:1px solid var(--line);border-radius:6px}
table.grid{border-collapse:separate;border-spacing:2px}
table.grid th.sc{vertical-align:bottom;height:180px;padding:0 0 4px;cursor:pointer}
table.grid th.sc span{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:500;font-size:12px;
white-space:nowrap}
table.grid th.v{font:12px ui-monospace,"DejaVu Sans Mono",monospace;text-align:left;padding:0 6px;white-space:nowrap;
font-weight:400;color:var(--muted)}
table.grid th.v.cand{color:#1f2328;font-weight:700}
table.grid th.rh{font-size:11px;color:var(--muted);text-align:left;vertical-align:bottom;padding:0 6px 4px;
font-weight:500}
td.c{width:26px;min-width:26px;height:24px;text-align:center;border-radius:4px;font-size:14px;line-height:24px;
cursor:pointer;user-select:none}
td.c.none{cursor:default}
td.c.blk{box-shadow:inset 0 0 0 2px var(--fail)}
td.c.sel{outline:3px solid var(--blue);outline-offset:1px}
td.c.dim{opacity:.13}
tr.hide,.hide{display:none}
.k-PASS{background:var(--pass-bg);color:var(--pass)}
.k-DEGRADED{background:var(--deg-bg);color:var(--deg)}
.k-FAIL{background:var(--fail-bg);color:var(--fail);font-weight:700}
.k-ACCEPTED{background:repeating-linear-gradient(135deg,#fde2e2 0 4px,#fff 4px 8px);color:var(--fail)}
.k-SURPRISE{background:var(--sur-bg);color:var(--sur);font-weight:700;box-shadow:inset 0 0 0 2px var(--sur)}
.k-ERROR{background:var(--err-bg);color:var(--err)}
.k-UNKNOWN{background:var(--unk-bg);color:var(--unk)}
.k-NOT_RUN{background:#fff;color:var(--muted);box-shadow:inset 0 0 0 1px var(--line)}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:var(--muted);margin-top:8px}
.legend span.g{display:inline-block;width:20px;text-align:center;border-radius:3px;margin-right:4px}
table.kv{border-collapse:collapse;width:100%;font-size:12px;margin:4px 0}
table.kv th,table.kv td{border-bottom:1px solid #eaeef2;padding:3px 6px;text-align:left;vertical-align:top}
table.kv th{color:var(--muted);font-weight:500;white-space:nowrap}
table.kv td{overflow-wrap:anywhere;white-space:pre-line}
table.kv td.nw{white-space:nowrap;overflow-wrap:normal}
tr.diff td{background:#fbefff}
tr.diff td:first-child{box-shadow:inset 3px 0 0 var(--sur)}
.words{background:#f6f8fa;border-left:3px solid var(--line);padding:6px 10px;margin:8px 0;color:inherit;
font-weight:400;box-shadow:none}
.words.w-SURPRISE{border-color:var(--sur)}
.words.w-FAIL,.words.w-ERROR,.words.w-UNKNOWN{border-color:var(--fail)}
.words.w-DEGRADED{border-color:#d4a72c}
.repro{display:flex;gap:6px;align-items:flex-start;margin:6px 0}
.repro code{flex:1;background:#f6f8fa;border:1px solid var(--line);border-radius:6px;padding:4px 8px;
word-break:break-all}
button{font:inherit;font-size:12px;border:1px solid var(--line);background:#f6f8fa;border-radius:6px;padding:3px 10px;
cursor:pointer}
button:hover{background:#eaeef2}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;border-radius:6px;padding:8px;font-size:12px;
max-height:240px;overflow:auto}
svg.tl{display:block;width:100%;height:auto;font-family:system-ui,"DejaVu Sans",sans-serif;background:#fff}
svg.tl .lane-label{font-size:10px;fill:#57606a}
svg.tl .tick{font-size:9px;fill:#8c959f}
svg.tl .vlabel{font-size:9px}
.log{max-height:320px;overflow:auto;border:1px solid #eaeef2;border-radius:6px}
.log table{font-size:11px}
.log tr.e-fault td,.log tr.e-kill td,.log tr.e-breakstep td{background:#ffebe9}
.log tr.e-reinit td{background:#dafbe1}
.log tr.e-data td{background:#ddf4ff}
.log tr.e-claim td{background:#fbefff}
.log tr.e-mark td{background:#f6f8fa;font-style:italic}
.finding{margin:6px 0 10px}
.finding .links{margin-top:3px;display:flex;flex-wrap:wrap;gap:4px}
.finding .links a{font-size:11px;font-family:ui-monospace,"DejaVu Sans Mono",monospace;background:#f6f8fa;
border:1px solid var(--line);border-radius:4px;padding:0 5px;color:var(--blue);text-decoration:none;cursor:pointer}
.note{color:var(--muted);font-size:12px}
.err{background:#ffebe9;border:1px solid #ff8182;padding:8px 12px;border-radius:6px;margin:8px 20px}
"""

SCRIPT = r"""
"use strict";
(function () {
  const root = document.documentElement;
  const D = JSON.parse(document.getElementById("data").textContent);
  const K = D.kinds, cells = D.cells, run = D.run, gate = D.gate, sm = D.summary;
  const $ = (q) => document.querySelector(q);
  const ROLES = ["publisher", "stream", "reconnect", "agent"];

  // ---- building blocks -----------------------------------------------------------------------------------
  function fill(el, kids) {  // append, flattening lists and skipping null/false (native append prints "null")
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    return fill(el, kids);
  }
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    return fill(el, kids);
  }
  const show = (x) => typeof x === "object" && x !== null ? JSON.stringify(x) : String(x);
  const fmt = (v) => v === null || v === undefined ? "—"
    : Array.isArray(v) ? (v.length ? v.map(show).join("\n") : "[]") : show(v);
  const glyph = (k) => h("span", {class: "g k-" + k}, K[k].glyph);
  const kindName = (k) => k === "ACCEPTED" ? "accepted" : k === "NOT_RUN" ? "not run" : k;
  const label = (c) => c.kind === "SURPRISE"
    ? "SURPRISE (live " + c.verdict + ", predicted " + (c.predicted || {}).verdict + ")"
    : c.kind === "ACCEPTED" ? c.verdict + (c.surprise ? " SURPRISE" : "") + ", accepted by the ledger" : c.verdict;
  function kvTable(rows, headers) {
    return h("table", {class: "kv"}, headers ? h("tr", {}, headers.map((x) => h("th", {}, x))) : null, rows);
  }
  const pairs = (list) => list.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, fmt(v))));

  // ---- header --------------------------------------------------------------------------------------------
  const gateWord = gate.passed ? "PASSED" : !gate.complete ? "INCOMPLETE" : "FAILED";
  const partial = !run.finished || sm.cells < sm.planned;
  const scale = run.time_scale === 1 ? "Coder's real timings" : "×" + run.time_scale + " of Coder's timings";
  const counts = [(sm.surprises || 0) + " SURPRISE", sm.PASS + " PASS", sm.DEGRADED + " DEGRADED",
    sm.FAIL + " FAIL" + (sm.accepted ? " (" + sm.accepted + " accepted by the ledger)" : "")];
  if (sm.ERROR) counts.push(sm.ERROR + " ERROR");
  if (sm.UNKNOWN) counts.push(sm.UNKNOWN + " UNKNOWN");
  fill($("header"), [
    h("h1", {}, "Compatibility report ", h("span", {class: "badge gate-" + gateWord.toLowerCase(), id: "gate"},
      "gate " + gateWord + (gate.candidate ? " for " + gate.candidate : ""))),
    partial ? h("div", {class: "partial", id: "partial"}, "Partial: " + sm.cells + " of " + sm.planned + " cells — " +
      "the run " + D.state +
      "; the gate is not decided.") : null,
    sm.planned === 0 && sm.cells === 0
      ? h("div", {class: "partial", id: "nocells"}, "This run has no cells: nothing was tested.") : null,
    h("div", {id: "counts"}, counts.join(" · ") + " — " + sm.cells + " of " + sm.planned + " cells" +
      (gate.blocking.length ? " · " + gate.blocking.length + " cell(s) block the gate" : "")),
    h("div", {class: "meta"}, [D.name ? "run " + D.name : null,
      "matrix " + run.matrix + " (sha256 " + String(run.matrix_sha256 || "").slice(0, 12) + ")", "seed " + run.seed,
      "time scale " + run.time_scale + " (" + scale + ")", "quiet window " + run.quiet_ms + " ms",
      (run.started || "?") + " → " + (run.ended || (run.interrupted ? "interrupted" : "not finished")),
      "harness " + run.harness_version]
      .filter(Boolean).join(" · "))]);

  // ---- grid ----------------------------------------------------------------------------------------------
  const G = D.grid, cand = gate.candidate, tds = [];
  const scTitle = (sc) => (run.scenarios && run.scenarios[sc] ? run.scenarios[sc].title : sc);
  const table = h("table", {class: "grid", id: "grid"}, h("thead", {}, h("tr", {},
    ROLES.map((r) => h("th", {class: "rh"}, r)),
    G.scenarios.map((sc, j) => h("th", {class: "sc", "data-col": j, title: scTitle(sc) + " (click: only this one)"},
      h("span", {}, sc))))));
  const tbody = h("tbody");
  G.rows.forEach((row, i) => {
    const tr = h("tr", {"data-row": i}, ROLES.map((r) =>
      h("th", {class: "v" + (cand && row.versions[r] === cand ? " cand" : "")}, row.versions[r])));
    G.slots[i].forEach((slot, j) => {
      let td;
      if (slot === null) td = h("td", {class: "c none", "data-col": j});
      else if (slot < 0) {
        const id = G.scenarios[j] + "[" + row.pairing + "]";
        td = h("td", {class: "c none k-NOT_RUN", "data-col": j, title: id + ": not run"}, K.NOT_RUN.glyph);
      } else {
        const c = cells[slot];
        td = h("td", {class: "c k-" + c.kind + (c.blocking ? " blk" : ""), "data-i": slot, "data-col": j,
          title: c.id + "\n" + label(c) + (c.blocking ? "\nblocks the gate" : "")}, K[c.kind].glyph);
        tds[slot] = td;
      }
      tr.append(td);
    });
    tbody.append(tr);
  });
  table.append(tbody);
  table.addEventListener("click", (ev) => {
    const td = ev.target.closest("td.c[data-i]");
    if (td) return select(Number(td.dataset.i), false);
    const th = ev.target.closest("th.sc");
    if (th) {
      scenarioSel.value = scenarioSel.value === th.dataset.col ? "" : th.dataset.col;
      applyFilters();
    }
  });

  // ---- filters -------------------------------------------------------------------------------------------
  const active = new Set();
  const toggle = (k) => (ev) => {
    if (active.has(k)) active.delete(k); else active.add(k);
    ev.currentTarget.classList.toggle("on", active.has(k));
    applyFilters();
  };
  const chips = Object.keys(D.counts).filter((k) => k !== "NOT_RUN").map((k) =>
    h("button", {class: "chip", "data-kind": k, title: K[k].label, onclick: toggle(k)},
      glyph(k), kindName(k) + " " + D.counts[k]));
  const scenarioSel = h("select", {onchange: () => applyFilters(), title: "show one scenario"},
    h("option", {value: ""}, "all scenarios"), G.scenarios.map((sc, j) => h("option", {value: String(j)}, sc)));
  const search = h("input", {type: "search", placeholder: "filter: version, cell id…", oninput: () => applyFilters()});
  const blockingOnly = h("button", {class: "chip", title: "cells that block the gate", onclick: (ev) => {
    ev.currentTarget.classList.toggle("on");
    applyFilters();
  }}, "blocking the gate " + gate.blocking.length);
  const clear = h("button", {onclick: () => {
    active.clear();
    chips.forEach((b) => b.classList.remove("on"));
    blockingOnly.classList.remove("on");
    scenarioSel.value = "";
    search.value = "";
    applyFilters();
  }}, "clear");
  const counter = h("span", {class: "note"});

  function applyFilters() {
    const q = search.value.trim().toLowerCase(), col = scenarioSel.value;
    const blk = blockingOnly.classList.contains("on"), filtering = active.size > 0 || q !== "" || blk;
    let shown = 0;
    table.querySelectorAll("[data-col]").forEach((el) =>
      el.classList.toggle("hide", col !== "" && el.dataset.col !== col));
    tbody.querySelectorAll("tr").forEach((tr) => {
      let any = false;
      tr.querySelectorAll("td.c").forEach((td) => {
        if (col !== "" && td.dataset.col !== col) return;
        const c = td.dataset.i === undefined ? null : cells[Number(td.dataset.i)];
        const ok = !filtering || (c !== null && (active.size === 0 || active.has(c.kind)) &&
          (!blk || c.blocking) && (q === "" || c.id.toLowerCase().includes(q)));
        td.classList.toggle("dim", !ok);
        if (ok && c) { any = true; shown++; }
      });
      tr.classList.toggle("hide", filtering && !any);
    });
    counter.textContent = filtering || col !== "" ? shown + " cell(s) match" : "";
  }

  const legend = h("div", {class: "legend"}, Object.keys(K).map((k) => h("span", {}, glyph(k), K[k].label)),
    h("span", {}, h("span", {class: "g", style: "box-shadow:inset 0 0 0 2px var(--fail)"}, "\u00a0"),
      "red frame: blocks the gate"),
    cand ? h("span", {}, h("b", {}, cand), " in bold: the candidate") : null);
  fill($("#gridbox"), [h("h2", {}, "Matrix: " + G.rows.length + " pairings × " + G.scenarios.length + " scenarios"),
    h("div", {class: "filters"}, chips, blockingOnly, scenarioSel, search, clear, counter), table, legend,
    h("div", {class: "note"}, "Rows: the replica that publishes the claim → the one holding the agent's stream → " +
      "the one it reconnects to, and the agent's release. Click a cell for its details.")]);

  // ---- timeline ------------------------------------------------------------------------------------------
  function events(c) {
    if (!c.tl) return null;
    const S = c.tl.s;  // the cell's string table
    return c.tl.e.map((a) => {
      const e = Object.assign({ms: a[0], src: S[a[1]], ev: S[a[2]]}, a[3] || {});
      for (const k of D.interned) if (typeof e[k] === "number") e[k] = S[e[k]];
      return e;
    });
  }
  const BREAKS = /^(cut|kill|terminate|stop|restart|arm|reset|blackhole|drop|delay|sigkill|pause)\b/i;
  function category(e) {
    const ev = e.ev || "";
    if (ev === "proxy.fault" || ev === "harness.fault" || ev === "pubsub.listener_lost") return "fault";
    if (ev === "agent.restart" || (ev.startsWith("replica.") && ev !== "replica.ready")) return "kill";
    if (ev === "harness.mark" || ev === "timeline.truncated") return "mark";
    if (ev === "agent.reinit") return "reinit";
    if (ev === "agent.duplicate") return "dup";
    if ((ev === "sse.frame" || ev === "proxy.frame") && e.type === "data") return "data";
    if (ev === "control.claimed" || ev === "build.completed" || ev === "claim.published") return "claim";
    if (ev === "harness.step") {
      return BREAKS.test(e.text || "") ? "breakstep" : /\bclaim\b/i.test(e.text || "") ? "claim" : "step";
    }
    if (ev === "agent.error") return "error";
    if (ev === "pubsub.reconnected" || ev === "pubsub.listener_reconnected") return "recover";
    return "other";
  }
  const COLORS = {fault: "#cf222e", kill: "#d4620a", mark: "#8c959f", reinit: "#1a7f37", dup: "#8c959f",
    data: "#0969da", claim: "#8250df", step: "#24292f", breakstep: "#cf222e", error: "#cf222e", recover: "#1a7f37",
    other: "#afb8c1"};
  const TL_LEGEND = [["fault", "fault / cut"], ["kill", "restart / kill"], ["mark", "mark"],
    ["breakstep", "breaking step"], ["step", "step"], ["claim", "claim"], ["data", "SSE data frame"],
    ["reinit", "reinit"], ["dup", "duplicate"], ["error", "agent error"], ["other", "other"]];
  const fieldsOf = (e) => Object.entries(e).filter(([k]) => k !== "ms" && k !== "src" && k !== "ev")
    .map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v))).join(" ");
  const shortIds = (t) => t.replace(/([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "$1…");
  const laneRank = (src) =>
    src === "harness" ? 0 : src === "agents" ? 1 : src === "proxy" ? 2 : src.startsWith("replica") ? 3 : 4;
  function niceStep(span) {
    const raw = span / 7, p = Math.pow(10, Math.floor(Math.log10(raw)));
    return [1, 2, 5, 10].map((m) => m * p).find((x) => x >= raw) || p * 10;
  }
  function mark(cat, X, Y, tip) {
    const c = COLORS[cat], cls = "m-" + cat;
    if (cat === "reinit" || cat === "dup") return s("path", {d: `M${X} ${Y - 8}l7 13h-14z`, fill: c, class: cls}, tip);
    if (cat === "data") return s("circle", {cx: X, cy: Y, r: 4.5, fill: c, class: cls}, tip);
    if (cat === "claim") return s("rect", {x: X - 4.5, y: Y - 4.5, width: 9, height: 9, fill: c, class: cls}, tip);
    if (cat === "step" || cat === "breakstep") {
      return s("path", {d: `M${X} ${Y - 6}l5 6l-5 6l-5-6z`, fill: c, class: cls}, tip);
    }
    if (cat === "error" || cat === "fault") {
      return s("path", {d: `M${X - 4} ${Y - 4}l8 8m0-8l-8 8`, stroke: c, "stroke-width": 2.5, class: cls}, tip);
    }
    if (cat === "kill" || cat === "recover") {
      return s("circle", {cx: X, cy: Y, r: 5, fill: "#fff", stroke: c, "stroke-width": 2.5, class: cls}, tip);
    }
    return s("rect", {x: X - 0.75, y: Y - 5, width: 1.5, height: 10, fill: c, class: cls}, tip);
  }
  function timeline(evs) {  // one time axis, a lane per source; faults, kills and marks cross every lane
    const lanes = [...new Set(evs.map((e) => e.src))]
      .sort((a, b) => laneRank(a) - laneRank(b) || (a < b ? -1 : a > b ? 1 : 0));
    const W = Math.max(480, Math.floor($("#details").clientWidth - 34)), L = 112, R = 14, top = 22, laneH = 24;
    const H = top + lanes.length * laneH + 22;
    let t0 = 0, t1 = 1;
    for (const e of evs) { t0 = Math.min(t0, e.ms); t1 = Math.max(t1, e.ms); }
    const x = (ms) => L + (ms - t0) / (t1 - t0) * (W - L - R);
    const out = s("svg", {class: "tl", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "timeline"});
    lanes.forEach((ln, i) => fill(out, [
      s("rect", {x: 0, y: top + i * laneH, width: W, height: laneH, fill: i % 2 ? "#fff" : "#f6f8fa"}),
      s("text", {class: "lane-label", x: 4, y: top + i * laneH + laneH / 2 + 3}, ln)]));
    const step = niceStep(t1 - t0);
    for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) {
      fill(out, [s("line", {x1: x(t), x2: x(t), y1: top, y2: H - 18, stroke: "#eaeef2"}),
        s("text", {class: "tick", x: x(t), y: H - 6, "text-anchor": "middle"}, Math.round(t) + " ms")]);
    }
    for (const e of evs) {  // lines across every lane first, so the marks stay on top
      const cat = category(e);
      if (cat !== "fault" && cat !== "kill" && cat !== "mark") continue;
      const X = x(e.ms);
      const what = cat === "mark" ? (e.label || "mark") : cat === "kill" ? "restart/kill" : e.fault || "fault";
      fill(out, [s("line", {x1: X, x2: X, y1: top - 4, y2: H - 18, stroke: COLORS[cat], class: "v-" + cat,
        "stroke-width": cat === "mark" ? 1 : 2, "stroke-dasharray": cat === "mark" ? "4 3" : null},
        s("title", {}, e.ms + " ms " + e.ev + " " + fieldsOf(e))),
        s("text", {class: "vlabel", x: X + 2, y: top - 8, fill: COLORS[cat]}, what)]);
    }
    for (const e of evs) {
      const cat = category(e);
      if (cat === "mark") continue;
      const tip = s("title", {}, e.ms + " ms  " + e.src + "  " + e.ev + "\n" + fieldsOf(e));
      out.append(mark(cat, x(e.ms), top + lanes.indexOf(e.src) * laneH + laneH / 2, tip));
    }
    return out;
  }

  // ---- details -------------------------------------------------------------------------------------------
  function copy(text, btn) {
    const done = () => { btn.textContent = "copied"; setTimeout(() => { btn.textContent = "copy"; }, 1500); };
    const fallback = () => {
      const ta = h("textarea", {style: "position:fixed;left:-9999px"}, text);
      document.body.append(ta);
      ta.select();
      try { document.execCommand("copy"); done(); } catch (err) { btn.textContent = "select and copy"; }
      ta.remove();
    };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
    else fallback();
  }
  function timelineSection(c) {
    const evs = events(c);
    if (evs === null) return h("p", {class: "note"}, "This cell's timeline was left out to keep the page small " +
      "(results.json has it).");
    if (!evs.length) return h("p", {class: "note"}, "No events were recorded for this cell.");
    const swatch = (k) => h("span", {class: "g", style: "background:" + COLORS[k]}, "\u00a0");
    const row = (e) => h("tr", {class: "e-" + category(e)}, h("td", {class: "mono nw"}, e.ms.toFixed(1)),
      h("td", {class: "nw"}, e.src), h("td", {class: "mono nw"}, e.ev),
      h("td", {class: "mono", title: fieldsOf(e)}, shortIds(fieldsOf(e))));
    return [timeline(evs), h("div", {class: "legend"}, TL_LEGEND.map(([k, t]) => h("span", {}, swatch(k), t))),
      h("h3", {}, "Events (" + evs.length + ")"),
      h("div", {class: "log"}, kvTable(evs.map(row), ["ms", "source", "event", "fields"]))];
  }
  function detail(c) {
    const sc = run.scenarios && run.scenarios[c.scenario];
    const wrong = new Set((c.differences || []).map((d) => d.split(":")[0].replace("non-200 statuses", "statuses")));
    const pf = (c.predicted && c.predicted.facts) || {};
    const pchecks = {};
    for (const k of (c.predicted && c.predicted.checks) || []) pchecks[k.name] = k;
    const checkRow = (k) => {
      const p = pchecks[k.name];
      return h("tr", {class: p && p.verdict !== k.verdict ? "diff" : null}, h("td", {class: "nw"}, k.name),
        h("td", {class: "nw"}, k.verdict), h("td", {}, fmt(k.count)), h("td", {}, k.message),
        h("td", {class: "nw"}, p ? p.verdict : "—"));
    };
    const factRow = (k) => h("tr", {class: wrong.has(k) ? "diff" : null}, h("th", {}, k),
      h("td", {class: "mono"}, fmt((c.facts || {})[k])), h("td", {class: "mono"}, fmt(pf[k])));
    const versions = Object.entries(c.versions || {})
      .map(([r, v]) => r + " " + v + " (" + ((c.variants || {})[r] || "?") + ")").join(" · ");
    const l = c.ledger;
    return fill(document.createDocumentFragment(), [
      h("h2", {class: "mono", id: "detail-id"}, c.id),
      h("div", {}, h("span", {class: "badge k-" + c.kind}, K[c.kind].glyph + " " + label(c)),
        c.blocking ? h("span", {class: "badge gate-failed"}, "blocks the gate") : null,
        c.candidate_involved ? h("span", {class: "badge k-NOT_RUN"}, "involves the candidate") : null),
      sc ? h("p", {class: "note"}, sc.doc || sc.title, sc.contract ? " Contract: " + sc.contract.join(", ") + "." : "")
        : null,
      c.paragraph ? h("div", {class: "words w-" + c.kind}, c.paragraph.replace(/ Repro( \(first pairing\))?: .*$/s, ""))
        : null,
      c.repro ? h("div", {class: "repro"}, h("code", {id: "repro"}, c.repro),
        h("button", {onclick: (ev) => copy(c.repro, ev.currentTarget)}, "copy")) : null,
      c.error ? [h("h3", {}, "Error"), h("pre", {}, c.error)] : null,
      c.surprise ? [h("h3", {}, "Differences from the model"),
        h("ul", {}, (c.differences || []).map((d) => h("li", {class: "mono"}, d)))] : null,
      h("h3", {}, "Checks"),
      kvTable((c.checks || []).map(checkRow), ["check", "live", "count", "message", "predicted"]),
      h("h3", {}, "Facts: live and predicted"),
      kvTable([...new Set([...Object.keys(c.facts || {}), ...Object.keys(pf)])].map(factRow),
        ["fact", "live", "predicted (model)"]),
      h("h3", {}, "Ledger"),
      l ? kvTable(pairs([["line", l.line], ["match", l.match], ["ticket", l.ticket], ["expires", l.expires],
        ["reason", l.reason], ["accepts this cell", c.accepted ? "yes" : "no (nothing to accept)"]]))
        : h("p", {class: "note"}, "No ledger entry covers this cell."),
      h("h3", {}, "Timeline"), timelineSection(c),
      h("h3", {}, "Cell"),
      kvTable(pairs([["versions", versions], ["started", c.started], ["duration", c.duration_s + " s"],
        ["worker", c.worker]]))]);
  }
  let selected = -1;
  function select(i, scroll) {
    if (selected >= 0 && tds[selected]) tds[selected].classList.remove("sel");
    selected = i;
    const c = cells[i];
    if (tds[i]) {
      tds[i].classList.add("sel");
      if (scroll) tds[i].scrollIntoView({block: "nearest", inline: "nearest"});
    }
    try { history.replaceState(null, "", "#cell=" + encodeURIComponent(c.id)); } catch (err) { /* some file:// */ }
    const box = $("#details");
    box.replaceChildren(detail(c));
    box.scrollTop = 0;
  }

  // ---- findings, ledger, about ---------------------------------------------------------------------------
  const fbox = $("#findings");
  fbox.append(h("h2", {}, "Findings: " + D.findings.reduce((n, f) => n + f.cells.length, 0) + " cell(s)"));
  if (!D.findings.length) fbox.append(h("p", {class: "note"}, "Nothing to report: every cell run so far passed " +
    "as predicted."));
  let sec = null;
  for (const f of D.findings) {
    if (f.section !== sec) {
      sec = f.section;
      fbox.append(h("h3", {}, glyph(D.sections[sec].kind), " ", D.sections[sec].title));
    }
    const m = f.paragraph.match(/^(.*) (Repro[^:]*): (harness .*)$/s);  // the repro command as code
    const words = m ? [m[1] + " " + m[2] + ": ", h("code", {}, m[3])] : [f.paragraph];
    fbox.append(h("div", {class: "finding"}, h("div", {}, words), h("div", {class: "links"},
      f.cells.map((i) => h("a", {onclick: () => select(i, true), title: cells[i].id}, cells[i].pairing)))));
  }
  const bad = (e) => e.status === "stale" || e.status === "expired";
  const lbox = fill($("#ledger"), [h("h2", {}, "Ledger")]);
  if (!D.ledger.length) lbox.append(h("p", {class: "note"}, "No ledger entries: every FAIL and SURPRISE counts."));
  else {
    fill(lbox, [kvTable(D.ledger.map((e) => h("tr", {class: bad(e) ? "diff" : null}, h("td", {}, e.line),
      h("td", {}, h("b", {}, e.status)), h("td", {class: "mono"}, e.match), h("td", {}, e.ticket),
      h("td", {}, e.expires), h("td", {}, e.cells_accepted + "/" + e.cells_matched), h("td", {}, e.reason))),
      ["line", "status", "match", "ticket", "expires", "accepted/matched", "reason"]),
    D.ledger.filter(bad).map((e) => h("p", {class: "note"}, h("b", {}, "Line " + e.line + " is " + e.status + ": "),
      e.status === "stale"
        ? "it matched " + e.cells_matched + " cell(s) and none failed; the incompatibility no longer shows: remove it."
        : "it expired on " + e.expires + "; the cells it covered count against the gate again."))]);
  }
  const dropped = Object.entries(D.dropped || {}), mach = run.machine || {};
  fill($("#about"), [h("h2", {}, "About this run"), kvTable(pairs([
    ["argv", (run.argv || []).join(" ")],
    ["machine", [mach.host, mach.cpus + " CPUs", "Python " + mach.python, mach.platform].join(" · ")],
    ["postgres", run.postgres], ["workers", run.workers], ["settings from", JSON.stringify(run.settings_from || {})],
    ["left out", dropped.length ? "timelines of " + dropped.map(([k, n]) => n + " " + k + " cell(s)").join(" and ") +
      ", to keep this page small; results.json has them" : "nothing: every cell's timeline is here"]]))]);

  // ---- start ---------------------------------------------------------------------------------------------
  const wanted = decodeURIComponent((location.hash.match(/^#cell=(.*)$/) || [])[1] || "");
  let first = cells.findIndex((c) => c.id === wanted);
  if (first < 0) first = cells.findIndex((c) => c.kind === "SURPRISE");
  if (first < 0) first = cells.findIndex((c) => c.blocking);
  if (first < 0) first = cells.findIndex((c) => c.kind !== "PASS");
  if (first >= 0) select(first, wanted !== "");
  else {
    $("#details").append(h("p", {class: "note"}, cells.length ? "Click a cell of the grid for its details."
      : "No cell has finished yet."));
  }
  root.dataset.cells = String(table.querySelectorAll("td.c[data-i]").length);
  root.dataset.ready = "1";
})();
"""

PAGE = ("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'; img-src data:">
<title>__TITLE__</title>
<script>
window.addEventListener("error", function (e) {
  var r = document.documentElement; r.dataset.errors = String(Number(r.dataset.errors || 0) + 1);
  var box = document.createElement("div"); box.className = "err";
  box.textContent = "This page hit an error: " + e.message; (document.body || r).prepend(box);
});
</script>
<style>""" + CSS + """</style>
</head>
<body>
<header></header>
<noscript><p class="err">This report is drawn by JavaScript; report.md has the same grid as text.</p></noscript>
<main>
<section class="panel" id="gridbox"></section>
<aside class="panel" id="details"></aside>
<section class="panel wide" id="findings"></section>
<section class="panel wide" id="ledger"></section>
<section class="panel wide" id="about"></section>
</main>
<script type="application/json" id="data">__DATA__</script>
<script>""" + SCRIPT + """</script>
</body>
</html>
""")
