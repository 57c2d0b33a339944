// Renders a decision trace as the policy engine reports it: one entry per rule considered
// ({section, rule, matched, effect, scope: [...], conditions: tree}), showing for the scope and for each
// condition leaf the fact, the operator and expected value, the value seen (or "missing") and pass/fail.

import { h, json } from "./dom.js";

function passFail(value) {
  if (value === true) return h("span", { class: "pass" }, "pass");
  if (value === false) return h("span", { class: "fail" }, "fail");
  return h("span", { class: "muted" }, "–");
}

function seen(entry) {
  if (entry.missing) return h("span", { class: "muted" }, "missing");
  return typeof entry.value === "string" ? JSON.stringify(entry.value) : json(entry.value);
}

/** Flatten a condition tree into rows with their depth: groups (all/any/not) and leaves. */
function conditionRows(node, depth = 0, out = []) {
  if (!node || typeof node !== "object") return out;
  const group = ["all", "any", "not"].find((k) => node[k] !== undefined);
  if (group) {
    out.push({ group, depth, result: node.result });
    const children = Array.isArray(node[group]) ? node[group] : [node[group]];
    for (const child of children) conditionRows(child, depth + 1, out);
  } else {
    out.push({ leaf: node, depth });
  }
  return out;
}

/** A rule's scope (actors/actions/stages) holds when every listed scope check passed. */
export function inScope(entry) {
  return Array.isArray(entry.scope) ? entry.scope.every((s) => s.result) : true;
}

export function renderTrace(trace) {
  if (!Array.isArray(trace)) return h("pre", { class: "mono", testid: "trace-raw" }, json(trace));
  // Rules whose actor/action/stage scope does not fit the case say little: list them in one line.
  const shown = trace.filter((entry) => entry.matched || inScope(entry) || entry.section !== "permissions");
  const skipped = trace.filter((entry) => !shown.includes(entry));
  return h("div", { testid: "trace" }, shown.map(renderEntry),
    skipped.length
      ? h("details", { class: "rule-trace" },
          h("summary", { class: "small muted" }, `${skipped.length} more rule${skipped.length === 1 ? "" : "s"} out of scope (actor, action or stage)`),
          h("div", {}, skipped.map(renderEntry)))
      : null);
}

function renderEntry(entry) {
  const scoped = inScope(entry);
  const scopeRows = (entry.scope || []).map((s) =>
    h("tr", { testid: "trace-scope" },
      h("td", { class: "mono" }, s.fact),
      h("td", { class: "mono" }, `${s.scope}: ${(s.in || []).join(", ")}`),
      h("td", { class: "mono" }, "seen: ", seen(s)),
      h("td", {}, passFail(s.result))));
  const condRows = conditionRows(entry.conditions).map((row) => {
    const pad = { paddingLeft: `${8 + row.depth * 16}px` };
    if (row.group) {
      return h("tr", {}, h("td", { style: pad, colspan: 3 }, h("em", {}, row.group)), h("td", {}, passFail(row.result)));
    }
    const leaf = row.leaf;
    return h("tr", { testid: "trace-leaf" },
      h("td", { style: pad, class: "mono", title: leaf.path || "" }, leaf.fact),
      h("td", { class: "mono" }, `${leaf.op} ${JSON.stringify(leaf.expected)}`),
      h("td", { class: "mono" }, "seen: ", seen(leaf)),
      h("td", {}, passFail(leaf.result)));
  });
  return h("details", {
      class: `rule-trace${entry.matched ? " matched" : ""}`,
      open: entry.matched || undefined,
      testid: "trace-rule",
      dataset: { rule: entry.rule, matched: String(Boolean(entry.matched)) },
    },
    h("summary", {},
      entry.matched ? h("span", { class: "pass" }, "matched") : h("span", { class: "fail" }, "no match"),
      h("span", { class: "mono" }, entry.rule),
      entry.section && entry.section !== "permissions" ? h("span", { class: "badge" }, entry.section) : null,
      entry.effect ? h("span", { class: "small muted" }, `→ ${entry.effect}`) : null,
      scoped ? null : h("span", { class: "small muted" }, "(out of scope)"),
      entry.conditions ? null : h("span", { class: "small muted" }, "(no conditions)")),
    scopeRows.length || condRows.length
      ? h("table", { class: "leaves" }, h("tbody", {}, scopeRows, condRows))
      : h("p", { class: "small muted", style: { margin: "4px 8px" } }, "applies to every actor, action and stage"));
}
