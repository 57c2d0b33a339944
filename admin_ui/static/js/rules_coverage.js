// The coverage grid: for one actor, every stage × action cell evaluated on the draft by `simulate` with only
// the stage, action and actor known. Each cell shows the effect and the deciding rule; cells that only the
// default decides are hatched. Conditional rules cannot match without their facts, so they are listed per
// cell (from the trace) rather than counted as coverage.

import { gql, payloadError } from "./api.js";
import { enumValue, h, label, replace } from "./dom.js";
import { SIMULATE } from "./queries.js";
import { ACTIONS, ACTORS } from "./rules_common.js";
import { inScope } from "./trace.js";

export function mountCoverage(container, { draft, fail }) {
  const actorSelect = h("select", { testid: "coverage-actor", onchange: () => run() },
    ACTORS.map((a) => h("option", { value: a }, a)));
  const grid = h("div", { testid: "coverage-grid", style: { overflowX: "auto" } });
  container.append(
    h("div", { class: "toolbar" },
      h("label", {}, "Actor ", actorSelect),
      h("button", { type: "button", testid: "coverage-refresh", onclick: () => run() }, "Recompute on the draft")),
    h("div", { class: "legend" },
      h("span", {}, h("i", { style: { background: "var(--good-soft)" } }), "allow"),
      h("span", {}, h("i", { style: { background: "var(--warn-soft)" } }), "require approval"),
      h("span", {}, h("i", { style: { background: "var(--bad-soft)" } }), "deny"),
      h("span", {}, h("i", { class: "hatch", style: { background: "repeating-linear-gradient(135deg, #fff 0 4px, #d0d5dd 4px 6px)" } }), "only the default decides"),
      h("span", {}, "+n: conditional rules that can apply here")),
    grid);

  let generation = 0;
  async function run() {
    const actor = actorSelect.value;
    const stages = draft.stages;
    const mine = ++generation;
    replace(grid, h("p", { class: "muted" }, "computing…"));
    const cases = [];
    for (const stage of stages) {
      for (const action of ACTIONS) {
        cases.push({ facts: { ticket: { stage }, action: { type: action, actor } }, label: `${stage}/${action}` });
      }
    }
    try {
      const results = [];
      // simulate takes a bounded number of cases per call
      for (let i = 0; i < cases.length; i += 100) {
        const data = await gql(SIMULATE, { source: draft.source, cases: cases.slice(i, i + 100) });
        const error = payloadError(data.simulate);
        if (error) throw error;
        results.push(...data.simulate.results);
      }
      if (mine !== generation) return;
      const byLabel = new Map(results.map((r) => [r.label, r]));
      replace(grid, h("table", { class: "coverage" },
        h("thead", {}, h("tr", {}, h("th", {}, "stage \\ action"), ACTIONS.map((a) => h("th", {}, label(a))))),
        h("tbody", {}, stages.map((stage) => h("tr", {},
          h("th", { class: "stage-col" }, label(stage)),
          ACTIONS.map((action) => cell(byLabel.get(`${stage}/${action}`), stage, action)))))));
    } catch (err) {
      if (mine !== generation) return;
      replace(grid, h("p", { class: "error" }, err.message));
      fail(err);
    }
  }

  run();
  return () => {
    generation++;
  };
}

function cell(result, stage, action) {
  if (!result || !result.draft) return h("td", {}, "?");
  const d = result.draft;
  const effect = enumValue(d.effect);
  const defaultOnly = !d.matchedRules.length;
  const conditional = conditionalRules(d.trace);
  const deciding = d.decidingRules.join(", ");
  const title = [
    `${label(stage)} × ${label(action)}: ${label(effect)}`,
    defaultOnly ? "no rule matches: the default decides" : `deciding: ${deciding}; matched: ${d.matchedRules.join(", ")}`,
    conditional.length ? `conditional rules in scope: ${conditional.join(", ")}` : "",
  ].filter(Boolean).join("\n");
  return h("td", {
      class: `${effect}${defaultOnly ? " default" : ""}`,
      title,
      testid: `coverage-${stage}-${action}`,
      dataset: { effect, defaultOnly: String(defaultOnly) },
    },
    label(effect),
    h("span", { class: "rule" }, defaultOnly ? "default" : deciding),
    conditional.length ? h("span", { class: "rule" }, `+${conditional.length}`) : null);
}

/** Rules whose actor/action/stage scope covers the cell but whose `when` needs facts we did not give. */
function conditionalRules(trace) {
  if (!Array.isArray(trace)) return [];
  return trace
    .filter((r) => r.section === "permissions" && !r.matched && r.conditions && inScope(r))
    .map((r) => r.rule);
}
