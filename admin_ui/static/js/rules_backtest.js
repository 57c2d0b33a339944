// Backtest: replay the facts of recent recorded decisions under the draft and the active version, and show
// what flips — totals, a bar chart of flips per action and direction, and the changed cases.

import { gql, payloadError } from "./api.js";
import { barChart } from "./charts.js";
import { h, json, label, replace } from "./dom.js";
import { BACKTEST } from "./queries.js";

export function mountBacktest(container, { draft, fail }) {
  const limit = h("input", { type: "number", min: "1", max: "10000", value: "1000", testid: "backtest-limit", style: { width: "90px" } });
  const button = h("button", { class: "primary", type: "button", testid: "backtest-button", onclick: run }, "Run backtest on the draft");
  const out = h("div", { testid: "backtest-results" },
    h("p", { class: "muted small" }, "Replays the facts of this store's recent decisions under the draft and the active version."));
  container.append(h("div", { class: "toolbar" }, h("label", {}, "Recent decisions ", limit), button), out);

  async function run() {
    button.disabled = true;
    replace(out, h("p", { class: "muted" }, "replaying…"));
    try {
      const data = await gql(BACKTEST, { source: draft.source, limit: Number(limit.value) || 1000 });
      const error = payloadError(data.backtest);
      if (error) replace(out, h("p", { class: "error" }, error.message));
      else replace(out, renderReport(data.backtest.report || {}));
    } catch (err) {
      replace(out, h("p", { class: "error" }, err.message));
      fail(err);
    } finally {
      button.disabled = false;
    }
  }
  return () => {};
}

/** Flip counts keyed "action: from → to", from whichever shape the report uses. */
export function flipRows(report) {
  const rows = [];
  const flips = report.flips ?? report.by_action ?? report.changes_by_action;
  if (Array.isArray(flips)) {
    for (const f of flips) rows.push({ action: f.action, from: f.from ?? f.active, to: f.to ?? f.draft, count: f.count });
  } else if (flips && typeof flips === "object") {
    for (const [action, inner] of Object.entries(flips)) {
      if (typeof inner === "number") rows.push({ action, from: "", to: "", count: inner });
      else for (const [direction, count] of Object.entries(inner)) {
        const [from, to] = direction.split(/\s*(?:->|→|>)\s*/);
        rows.push({ action, from, to, count });
      }
    }
  } else if (Array.isArray(report.changed)) {
    const counts = new Map();
    for (const c of report.changed) {
      const key = [actionOf(c), effectOf(c, "active"), effectOf(c, "draft")].join("|");
      counts.set(key, (counts.get(key) || 0) + 1);
    }
    for (const [key, count] of counts) {
      const [action, from, to] = key.split("|");
      rows.push({ action, from, to, count });
    }
  }
  return rows.sort((a, b) => b.count - a.count);
}

function actionOf(c) {
  return (c.facts && c.facts.action && c.facts.action.type) || c.action || "?";
}

function effectOf(c, side) {
  const v = c[side] ?? c[`${side}_effect`];
  return (v && typeof v === "object" ? v.effect : v) || "?";
}

function renderReport(report) {
  const total = report.total ?? report.cases ?? report.cases_considered ?? 0;
  const changedList = report.changed_cases ?? report.samples ?? (Array.isArray(report.changed) ? report.changed : []);
  const changedCount = typeof report.changed === "number" ? report.changed : report.changed_count ?? changedList.length;
  const rows = flipRows(report);
  return h("div", {},
    h("p", { testid: "backtest-summary" },
      h("strong", {}, String(changedCount)), ` of ${total} replayed decisions change under the draft.`),
    rows.length
      ? barChart({
          rows: rows.map((r) => ({ label: `${label(r.action)}: ${label(r.from)} → ${label(r.to)}`, values: [r.count], highlight: r.to === "deny" })),
          series: [{ name: "cases that flip", className: "bar-warn" }],
          width: 560,
          labelWidth: 280,
          testid: "backtest-chart",
        })
      : h("p", { class: "muted small" }, "Nothing flips."),
    changedList.length
      ? h("div", {}, h("h3", {}, "Changed cases"),
          h("table", { class: "table", testid: "backtest-changed" },
            h("thead", {}, h("tr", {}, ["Action", "Actor", "Stage", "Active", "Draft", "Facts"].map((t) => h("th", {}, t)))),
            h("tbody", {}, changedList.slice(0, 100).map((c) => h("tr", {},
              h("td", {}, label(actionOf(c))),
              h("td", {}, label(c.facts && c.facts.action && c.facts.action.actor)),
              h("td", {}, label(c.facts && c.facts.ticket && c.facts.ticket.stage)),
              h("td", {}, label(effectOf(c, "active"))),
              h("td", {}, h("strong", {}, label(effectOf(c, "draft")))),
              h("td", {}, h("details", {}, h("summary", { class: "small muted" }, "facts"), h("pre", { class: "mono" }, json(c.facts ?? c)))))))))
      : null,
    h("details", {}, h("summary", { class: "small muted" }, "Full report"), h("pre", { class: "mono" }, json(report))));
}
