"""The inline CSS and JavaScript of ``results/REPORT.html`` (bench/reporting/html.py): no external URL.

The script reads the answers from ``<script id="answers-data" type="application/json">`` and renders the
"every question" table of the chosen run, filtered by variant, by each of the run's question groups
(relation, stratum) and by right/wrong (exact match of the chosen variant; with every variant shown, right =
all of them right, wrong = any of them wrong). Rows carry ``data-qid`` and ``data-<group>`` attributes, and
``#answers-count`` says how many questions are shown (tests/test_report_html.py reads both in Chromium).
"""

from __future__ import annotations

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em;
       color: #1b1b1b; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: .6em 0; font-size: 12px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 6px; vertical-align: top; }
th { background: #f1f1f1; position: sticky; top: 0; }
td.num { text-align: right; white-space: nowrap; }
.scroll { overflow-x: auto; }
img.plot { max-width: 100%; border: 1px solid #ddd; }
#controls { position: sticky; top: 0; background: #fff; padding: .5em 0; z-index: 2;
            border-bottom: 1px solid #ccc; display: flex; flex-wrap: wrap; gap: .8em; align-items: center; }
#controls label { white-space: nowrap; }
#answers td.right { background: #e6f4e6; } #answers td.wrong { background: #fbe9e9; }
#answers td.none { background: #f6f6f6; color: #777; }
#answers .m { display: block; color: #555; font-size: 11px; }
#answers td.q { max-width: 22em; }
#answers td.a { min-width: 6em; max-width: 16em; overflow-wrap: break-word; }
code { background: #f3f3f3; padding: 0 2px; }
"""

JS = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("answers-data").textContent);
const $ = (id) => document.getElementById(id);
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function run() { return DATA.runs.find((r) => r.id === $("f-run").value) || DATA.runs[0]; }
function fillSelect(sel, values, labels, allLabel) {
  sel.replaceChildren(el("option", { value: "" }, allLabel));
  for (const v of values) sel.appendChild(el("option", { value: v }, labels ? labels[v] || v : v));
}
function setupRun() {
  const r = run();
  fillSelect($("f-variant"), r.variants, r.labels, "every variant");
  const box = $("f-groups");
  box.replaceChildren();
  for (const g of r.groups) {
    const values = [...new Set(r.questions.map((q) => q.g[g]).filter((v) => v !== undefined))].sort();
    const sel = el("select", { id: "f-group-" + g, "data-group": g });
    fillSelect(sel, values, null, "every " + g);
    sel.addEventListener("change", render);
    const label = el("label", {}, g + " ");
    label.appendChild(sel);
    box.appendChild(label);
  }
  render();
}
function isRight(q, v) { const a = q.a[v]; return a ? a[1] === 1 : null; }
function keep(q, r, shown) {
  for (const sel of document.querySelectorAll("#f-groups select")) {
    if (sel.value && String(q.g[sel.dataset.group]) !== sel.value) return false;
  }
  const want = $("f-correct").value;
  if (!want) return true;
  const marks = shown.map((v) => isRight(q, v)).filter((m) => m !== null);
  if (!marks.length) return false;
  return want === "right" ? marks.every((m) => m) : marks.some((m) => !m);
}
function cell(q, v) {
  const a = q.a[v];
  if (!a) return el("td", { class: "a none" }, "–");
  const td = el("td", { class: "a " + (a[1] === 1 ? "right" : a[1] === 0 ? "wrong" : "none") });
  td.appendChild(document.createTextNode(a[0] === null ? "(error)" : a[0] || "(empty)"));
  const f1 = a[2] === null ? "–" : a[2].toFixed(2);
  td.appendChild(el("span", { class: "m" }, "EM " + (a[1] === null ? "–" : a[1]) + " · F1 " + f1));
  return td;
}
function render() {
  const r = run();
  const only = $("f-variant").value;
  const shown = only ? [only] : r.variants;
  const head = el("tr");
  for (const h of ["question", "gold", ...r.groups]) head.appendChild(el("th", {}, h));
  for (const v of shown) head.appendChild(el("th", { "data-variant": v }, r.labels[v] || v));
  $("answers").querySelector("thead").replaceChildren(head);
  const body = document.createDocumentFragment();
  let n = 0;
  for (const q of r.questions) {
    if (!keep(q, r, shown)) continue;
    n += 1;
    const tr = el("tr", { "data-qid": q.id });
    for (const g of r.groups) tr.setAttribute("data-" + g, q.g[g] === undefined ? "" : q.g[g]);
    tr.appendChild(el("td", { class: "q" }, q.q));
    tr.appendChild(el("td", {}, q.gold.join(" / ")));
    for (const g of r.groups) tr.appendChild(el("td", {}, q.g[g] === undefined ? "–" : q.g[g]));
    for (const v of shown) tr.appendChild(cell(q, v));
    body.appendChild(tr);
  }
  $("answers").querySelector("tbody").replaceChildren(body);
  $("answers-count").textContent = n + " of " + r.questions.length + " questions shown";
  $("answers-count").dataset.shown = String(n);
}
function init() {
  if (!DATA.runs.length) {
    $("answers-count").textContent = "no run has an answers.jsonl";
    document.body.dataset.ready = "1";
    return;
  }
  const titles = Object.fromEntries(DATA.runs.map((r) => [r.id, r.title]));
  fillSelect($("f-run"), DATA.runs.map((r) => r.id), titles, "");
  $("f-run").firstChild.remove();
  $("f-run").addEventListener("change", setupRun);
  $("f-variant").addEventListener("change", render);
  $("f-correct").addEventListener("change", render);
  setupRun();
  document.body.dataset.ready = "1";
}
init();
"""
