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

/** Effect flips per action from the report's `by_action` ({action: {"allow->deny": n, ...}}). */
export function flipRows(report) {
  const rows = [];
  for (const [action, counts] of Object.entries(report.by_action || {})) {
    for (const [direction, count] of Object.entries(counts)) {
      const [from, to] = direction.split("->");
      if (from !== to && count) rows.push({ action, from, to, count });
    }
  }
  return rows.sort((a, b) => b.count - a.count);
}

function actionOf(sample) {
  return (sample.facts && sample.facts.action && sample.facts.action.type) || "?";
}

function renderReport(report) {
  const total = report.total ?? 0;
  const samples = report.samples || [];
  const rows = flipRows(report);
  const refunds = report.refund_amount_changing_approval_path;
  const decisionCell = (d) => h("td", {}, label(d.effect), h("div", { class: "mono small muted" }, (d.deciding_rules || []).join(", ") || "default"));
  return h("div", {},
    h("p", { testid: "backtest-summary" },
      h("strong", {}, String(report.changed ?? 0)), ` of ${total} replayed decisions change under the draft`,
      total ? ` (${report.cases_considered ?? total} recorded decisions considered).` : ". No recorded decisions to replay yet."),
    refunds && refunds.cases
      ? h("p", { class: "small", testid: "backtest-refunds" },
          `Refunds changing approval path: ${refunds.cases} cases — ${refunds.into_approval} into approval, ${refunds.out_of_approval} out of it.`)
      : null,
    rows.length
      ? barChart({
          rows: rows.map((r) => ({ label: `${label(r.action)}: ${label(r.from)} → ${label(r.to)}`, values: [r.count], highlight: r.to === "deny" })),
          series: [{ name: "cases whose effect flips", className: "bar-warn" }],
          width: 560,
          labelWidth: 300,
          testid: "backtest-chart",
        })
      : h("p", { class: "muted small" }, "No effect flips."),
    samples.length
      ? h("div", {}, h("h3", {}, `Changed cases${samples.length < (report.changed ?? 0) ? ` (first ${samples.length})` : ""}`),
          h("table", { class: "table", testid: "backtest-changed" },
            h("thead", {}, h("tr", {}, ["#", "Action", "Actor", "Stage", "Active", "Draft", ""].map((t) => h("th", {}, t)))),
            h("tbody", {}, samples.map((c) => h("tr", {},
              h("td", { class: "muted" }, String(c.case)),
              h("td", {}, label(actionOf(c)), c.facts.action && c.facts.action.amount !== undefined ? ` ${c.facts.action.amount}` : ""),
              h("td", {}, label(c.facts.action && c.facts.action.actor)),
              h("td", {}, label(c.facts.ticket && c.facts.ticket.stage)),
              decisionCell(c.active),
              decisionCell(c.draft),
              h("td", {}, h("details", {}, h("summary", { class: "small muted" }, "facts"), h("pre", { class: "mono" }, json(c.facts)))))))))
      : null);
}
