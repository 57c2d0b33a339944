// Renders a decision trace: every rule considered, whether its scope and condition matched, and for each
// condition leaf the fact, the operator, the expected value, the value seen (or "missing") and pass/fail.

import { h, json } from "./dom.js";

const pick = (obj, ...names) => {
  for (const name of names) if (obj && obj[name] !== undefined) return obj[name];
  return undefined;
};

function rulesOf(trace) {
  if (Array.isArray(trace)) return trace;
  if (trace && typeof trace === "object") {
    for (const key of ["rules", "permissions", "considered"]) if (Array.isArray(trace[key])) return trace[key];
  }
  return null;
}

/** Flatten a condition tree ({all|any|not, leaves}) into rows with their depth. */
function leavesOf(node, depth = 0, out = []) {
  if (!node || typeof node !== "object") return out;
  if (Array.isArray(node)) {
    for (const child of node) leavesOf(child, depth, out);
    return out;
  }
  const group = ["all", "any", "not"].find((k) => node[k] !== undefined) || (node.op && ["all", "any", "not"].includes(node.op) ? node.op : null);
  if (group) {
    out.push({ group, depth, result: pick(node, "result", "passed", "matched", "value") });
    leavesOf(node.children || node[group], depth + 1, out);
    return out;
  }
  if (node.fact !== undefined || node.path !== undefined) {
    out.push({ leaf: node, depth });
    return out;
  }
  leavesOf(pick(node, "conditions", "leaves", "when", "checks"), depth, out);
  return out;
}

function passFail(value) {
  if (value === true) return h("span", { class: "pass" }, "pass");
  if (value === false) return h("span", { class: "fail" }, "fail");
  return h("span", { class: "muted" }, "–");
}

function shown(value) {
  if (value === undefined) return h("span", { class: "muted" }, "missing");
  return typeof value === "string" ? JSON.stringify(value) : json(value);
}

export function renderTrace(trace) {
  const rules = rulesOf(trace);
  if (!rules) return h("pre", { class: "mono", testid: "trace-raw" }, json(trace));
  return h("div", { testid: "trace" }, rules.map((rule) => {
    const id = pick(rule, "id", "rule", "rule_id") ?? "?";
    const matched = pick(rule, "matched", "fired", "result");
    const scope = pick(rule, "in_scope", "scope_matched", "scope");
    const effect = pick(rule, "effect");
    const rows = leavesOf(pick(rule, "conditions", "leaves", "when", "condition", "checks"));
    return h("details", { class: `rule-trace${matched ? " matched" : ""}`, open: Boolean(matched) || undefined, testid: "trace-rule", dataset: { rule: id } },
      h("summary", {},
        matched ? h("span", { class: "pass" }, "matched") : h("span", { class: "fail" }, "no match"),
        h("span", { class: "mono" }, id),
        effect ? h("span", { class: "small muted" }, `→ ${effect}`) : null,
        scope === false ? h("span", { class: "small muted" }, "(out of scope: actor, action or stage)") : null,
        rule.reason ? h("span", { class: "small muted" }, rule.reason) : null),
      rows.length
        ? h("table", { class: "leaves" }, h("tbody", {}, rows.map((row) => {
            const pad = { paddingLeft: `${8 + row.depth * 16}px` };
            if (row.group) return h("tr", {}, h("td", { style: pad, colspan: 3 }, h("em", {}, row.group)), h("td", {}, passFail(row.result)));
            const leaf = row.leaf;
            const op = pick(leaf, "op", "operator");
            const expected = pick(leaf, "expected", "value", "arg");
            const seen = leaf.missing ? undefined : pick(leaf, "actual", "seen", "fact_value", "got");
            return h("tr", { testid: "trace-leaf" },
              h("td", { style: pad, class: "mono" }, pick(leaf, "fact", "path")),
              h("td", { class: "mono" }, `${op ?? ""} ${expected === undefined ? "" : JSON.stringify(expected)}`),
              h("td", { class: "mono" }, "seen: ", shown(seen)),
              h("td", {}, passFail(pick(leaf, "passed", "result", "ok"))));
          })))
        : h("p", { class: "small muted", style: { margin: "4px 8px" } }, "no conditions"));
  }));
}
