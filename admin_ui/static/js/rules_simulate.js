// Simulation: facts from a form, as JSON, or existing tickets → `simulate` on the draft → the draft's
// decision (effect, deciding and matched rules, the full trace) beside the active version's decision.

import { gql, payloadError } from "./api.js";
import { enumValue, h, json, label, replace } from "./dom.js";
import { RECENT_TICKETS, SIMULATE } from "./queries.js";
import { ACTIONS, ACTORS, TICKET_ACTIONS } from "./rules_common.js";
import { effectBadge } from "./ticket.js";
import { renderTrace } from "./trace.js";

const PRIORITIES = ["urgent", "high", "normal", "low"];

export function mountSimulation(container, { draft, fail }) {
  let mode = "form";
  const field = (text, input) => h("div", { class: "field" }, h("label", {}, text, input));
  const select = (name, options, value) =>
    h("select", { name, testid: `sim-${name}` }, options.map((o) => h("option", { value: o, selected: o === value }, label(o))));

  const form = h("form", { class: "sim-form", testid: "sim-form", onsubmit: (e) => e.preventDefault() },
    field("Stage", select("stage", draft.stages, "triaged")),
    field("Actor", select("actor", ACTORS, "ai")),
    field("Action", select("action", ACTIONS, "refund")),
    field("Amount", h("input", { name: "amount", type: "number", step: "0.01", value: "20", testid: "sim-amount" })),
    field("Priority", select("priority", PRIORITIES, "normal")),
    field("Category", h("input", { name: "category", type: "text", value: "refund_return", testid: "sim-category" })),
    field("Category confidence", h("input", { name: "confidence", type: "number", step: "0.01", min: "0", max: "1", value: "0.9", testid: "sim-confidence" })),
    field("Order total", h("input", { name: "order_total", type: "number", step: "0.01", value: "", testid: "sim-order-total" })),
    field("VIP customer", h("input", { name: "vip", type: "checkbox", testid: "sim-vip" })),
    h("div", { class: "field", style: { gridColumn: "1 / -1" } },
      h("label", {}, "Ticket text (for handoff rules)",
        h("input", { name: "body", type: "text", placeholder: "e.g. I will file a chargeback", testid: "sim-body", style: { width: "100%" } }))));

  const factsJson = h("textarea", { class: "facts-json", spellcheck: false, testid: "sim-facts-json", "aria-label": "Facts as JSON" });
  const ticketList = h("div", { testid: "sim-ticket-list", class: "scroll-box" }, h("p", { class: "muted" }, "loading tickets…"));
  const ticketAction = h("div", { class: "sim-form", style: { marginTop: "8px" } },
    field("Actor", select("t_actor", ACTORS, "ai")),
    field("Action", select("t_action", TICKET_ACTIONS, "refund")),
    field("Amount", h("input", { name: "t_amount", type: "number", step: "0.01", value: "40" })));
  const ticketsPane = h("div", {}, ticketList, h("h3", {}, "Action to try on each"), ticketAction);

  const panes = { form, json: factsJson, tickets: ticketsPane };
  const modeBar = h("div", { class: "toolbar" },
    h("span", { class: "small muted" }, "Facts from:"),
    ["form", "json", "tickets"].map((m) =>
      h("label", { class: "small" }, h("input", { type: "radio", name: "sim-mode", value: m, checked: m === mode, testid: `sim-mode-${m}`, onchange: () => setMode(m) }), ` ${label(m === "json" ? "JSON" : m)} `)));
  const paneBox = h("div", {});
  const button = h("button", { class: "primary", type: "button", testid: "simulate-button", onclick: run }, "Simulate on the draft");
  const results = h("div", { testid: "sim-results" });

  container.append(modeBar, paneBox, h("div", { class: "toolbar" }, button), results);

  function setMode(next) {
    if (next === "json" && mode === "form") factsJson.value = json(formFacts());
    mode = next;
    replace(paneBox, panes[mode]);
    if (mode === "tickets") loadTickets();
  }

  function formFacts() {
    const v = (name) => form.elements[name].value;
    const num = (name) => (v(name) === "" ? undefined : Number(v(name)));
    const facts = {
      ticket: { stage: v("stage"), priority: v("priority"), category: v("category") || undefined, body: v("body") || undefined },
      action: { type: v("action"), actor: v("actor"), amount: num("amount") },
      classifier: { category: v("category") || undefined, category_confidence: num("confidence"), priority: v("priority") },
      customer: { vip: form.elements.vip.checked },
    };
    if (num("order_total") !== undefined) facts.order = { total: num("order_total") };
    return JSON.parse(JSON.stringify(facts)); // drops the undefined entries
  }

  let ticketsLoaded = false;
  async function loadTickets() {
    if (ticketsLoaded) return;
    try {
      const data = await gql(RECENT_TICKETS, { first: 25 });
      ticketsLoaded = true;
      const rows = data.tickets.edges.map((e) => e.node);
      replace(ticketList, rows.length
        ? h("table", { class: "table" },
            h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Ticket"), h("th", {}, "Stage"), h("th", {}, "Category"))),
            h("tbody", {}, rows.map((t, i) => h("tr", {},
              h("td", {}, h("input", { type: "checkbox", value: t.id, checked: i < 3, testid: "sim-ticket-check", dataset: { subject: t.subject || "(no subject)" } })),
              h("td", {}, t.subject || h("span", { class: "muted" }, "(no subject)")), h("td", {}, label(enumValue(t.stage))), h("td", {}, label(t.category))))))
        : h("p", { class: "muted" }, "No tickets yet."));
    } catch (err) {
      fail(err);
    }
  }

  function cases() {
    if (mode === "form") return [{ facts: formFacts(), label: "form" }];
    if (mode === "json") {
      let parsed;
      try {
        parsed = JSON.parse(factsJson.value);
      } catch (err) {
        throw new Error(`The facts are not valid JSON: ${err.message}`);
      }
      const list = Array.isArray(parsed) ? parsed : [parsed];
      return list.map((facts, i) => ({ facts, label: list.length > 1 ? `case ${i + 1}` : "JSON" }));
    }
    const picked = [...ticketList.querySelectorAll("input[type=checkbox]:checked")];
    if (!picked.length) throw new Error("Pick at least one ticket.");
    const el = ticketAction.querySelectorAll("select, input");
    const [actor, type, amount] = [...el].map((x) => x.value);
    return picked.map((box) => ({
      ticketId: box.value,
      label: box.dataset.subject,
      action: { type: type.toUpperCase(), actor: actor.toUpperCase(), amount: amount === "" ? null : Number(amount) },
    }));
  }

  async function run() {
    let caseList;
    try {
      caseList = cases();
    } catch (err) {
      replace(results, h("p", { class: "error" }, err.message));
      return;
    }
    button.disabled = true;
    replace(results, h("p", { class: "muted" }, "simulating…"));
    try {
      const data = await gql(SIMULATE, { source: draft.source, cases: caseList });
      const payload = data.simulate;
      const error = payloadError(payload);
      if (error) {
        replace(results, h("p", { class: "error", testid: "sim-error" }, error.message));
        return;
      }
      replace(results, payload.results.map((r, i) => renderResult(r, i, draft.activeVersion)));
    } catch (err) {
      replace(results, h("p", { class: "error" }, err.message));
      fail(err);
    } finally {
      button.disabled = false;
    }
  }

  setMode(mode);
  return () => {};
}

function renderResult(result, index, activeVersion) {
  const activeName = activeVersion === null ? "Active (built-in default)" : `Active (version ${activeVersion})`;
  const routing = result.routing || {};
  return h("div", { class: "card", testid: "sim-result", dataset: { index } },
    h("div", { class: "toolbar" },
      h("strong", {}, result.label),
      result.changed ? h("span", { class: "badge warn", testid: "sim-changed" }, "differs from active") : h("span", { class: "badge" }, "same as active")),
    result.draft
      ? h("div", { class: "decisions" },
          decisionBox("Draft", result.draft, result.changed, "decision-effect"),
          result.active ? decisionBox(activeName, result.active, result.changed, "active-decision-effect") : null)
      : h("p", { class: "muted" }, "No action in these facts, so no permission decision; routing only."),
    h("p", { class: "small" }, h("strong", {}, "Routing: "),
      routing.rule_id ? `rule ${routing.rule_id}` : "no routing rule matched",
      routing.team ? ` → team ${routing.team}` : "",
      routing.set && Object.keys(routing.set).length ? `, sets ${json(routing.set)}` : ""),
    (result.escalations || []).length
      ? h("p", { class: "small" }, h("strong", {}, "Escalations due: "), result.escalations.map((e) => e.id).join(", "))
      : null,
    (result.plannedEscalations || []).length
      ? h("p", { class: "small", testid: "planned-escalations" }, h("strong", {}, "On the clock: "),
          result.plannedEscalations.map((p) => `${p.rule_id} fires at ${new Date(p.fires_at).toLocaleString()} (in ${p.stage})`).join("; "))
      : null,
    result.draft && result.draft.trace ? h("div", { class: "trace" }, h("h3", {}, "Trace (draft)"), renderTrace(result.draft.trace)) : null,
    h("details", {}, h("summary", { class: "small muted" }, "Facts used"), h("pre", { class: "mono" }, json(result.facts))));
}

function decisionBox(title, decision, changed, testid) {
  return h("div", { class: `decision${changed ? " changed" : ""}` },
    h("div", { class: "small muted" }, title),
    h("div", { class: "big" }, h("span", { testid, dataset: { effect: enumValue(decision.effect) } }, effectBadge(decision.effect)), decision.handoff ? h("span", { class: "badge warn" }, "handoff") : null),
    h("div", { class: "small" }, h("strong", {}, "Deciding: "), h("span", { class: "mono", testid: testid === "decision-effect" ? "deciding-rules" : null }, decision.decidingRules.join(", ") || "default")),
    h("div", { class: "small" }, h("strong", {}, "Matched: "), h("span", { class: "mono" }, decision.matchedRules.join(", ") || "none")),
    decision.approvers && decision.approvers.length ? h("div", { class: "small" }, h("strong", {}, "Approvers: "), decision.approvers.join(", ")) : null,
    decision.explanation ? h("p", { class: "small muted" }, decision.explanation) : null);
}
