// One ticket: its facts, SLA, messages, the actions requested with the decisions that governed them, and
// the audit trail (who did what, with the ruleset version and decision at the time).

import { gql } from "./api.js";
import { ageSeconds, debounce, enumValue, fmtDuration, fmtTime, h, json, label, replace } from "./dom.js";
import { TICKET_DETAIL, TICKET_EVENTS } from "./queries.js";

export function mountTicket(container, { session, onAuthError }, id) {
  const body = h("div", {}, h("p", { class: "muted" }, "loading…"));
  const live = h("span", { class: "small muted", testid: "ticket-live" });
  container.append(h("div", { class: "toolbar" }, h("a", { href: "#/queue" }, "← Queue"), h("span", { class: "spacer" }), live), body);
  let disposed = false;

  async function load() {
    try {
      const data = await gql(TICKET_DETAIL, { id });
      if (disposed) return;
      if (!data.ticket) {
        replace(body, h("p", { class: "error", testid: "ticket-missing" }, "No such ticket."));
        return;
      }
      replace(body, render(data.ticket, data.auditLog || []));
    } catch (err) {
      if (err.unauthenticated) onAuthError(err);
      else replace(body, h("p", { class: "error" }, err.message));
    }
  }

  // Whatever happens to this ticket elsewhere (a message, a decision, a move) shows up here by itself.
  const reload = debounce(load, 300);
  const stop = session.client.subscribe({ query: TICKET_EVENTS, variables: { id } }, {
    next(payload) {
      const event = payload.data && payload.data.ticketEvents;
      if (!event) return;
      live.textContent = `updated: ${label(event.kind)} at ${fmtTime(event.at)}`;
      reload();
    },
    error() {
      live.textContent = "live updates unavailable for this ticket";
    },
    complete() {},
  });

  load();
  return () => {
    disposed = true;
    reload.cancel();
    stop();
  };
}

function render(t, audit) {
  const facts = [
    ["Stage", `${label(enumValue(t.stage))} for ${fmtDuration(ageSeconds(t.stageEnteredAt))}`],
    ["Priority", label(enumValue(t.priority)) + conf(t.priorityConfidence)],
    ["Category", label(t.category) + conf(t.categoryConfidence)],
    ["Channel", label(enumValue(t.channel))],
    ["Team / assignee", `${(t.team && t.team.name) || "–"} / ${(t.assignee && t.assignee.name) || "–"}`],
    ["Routing rule", t.routingRuleId || "–"],
    ["Customer", [t.customer.name, t.customer.email, t.customer.vip ? "VIP" : null].filter(Boolean).join(" · ") || "–"],
    ["Order", t.order.id ? `${t.order.id} · ${t.order.total ?? "–"} ${t.order.currency || ""}` : "–"],
    ["Created", fmtTime(t.createdAt)],
    ["First response due", fmtTime(t.sla.firstResponseDueAt) + (t.sla.firstRespondedAt ? " (answered)" : "")],
    ["Resolution due", fmtTime(t.sla.resolutionDueAt)],
    ["Tags", t.tags.length ? t.tags.join(", ") : "–"],
  ];
  return h("div", { class: "ticket", testid: "ticket-detail" },
    h("div", { class: "page-head" },
      h("h1", {}, t.subject || "(no subject)"),
      t.sla.breachedAt ? h("span", { class: "badge bad" }, `SLA breached ${fmtTime(t.sla.breachedAt)}`) : null,
      t.needsHuman ? h("span", { class: "badge warn" }, "needs a human") : null),
    h("div", { class: "two-col" },
      h("section", { class: "card" }, h("h2", {}, "Details"),
        h("dl", { class: "facts" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
      h("section", { class: "card" }, h("h2", {}, `Messages (${t.messages.length})`),
        h("div", { class: "messages", testid: "ticket-messages" },
          h("div", { class: "message customer" }, h("div", { class: "msg-head" }, "customer · ", fmtTime(t.createdAt)), h("div", { class: "msg-body" }, t.body)),
          t.messages.map((m) => h("div", { class: `message ${enumValue(m.authorType)}` },
            h("div", { class: "msg-head" }, `${label(enumValue(m.authorType))} · ${fmtTime(m.createdAt)}`),
            h("div", { class: "msg-body" }, m.body)))))),
    h("section", { class: "card" }, h("h2", {}, "Actions and decisions"),
      t.actions.length
        ? h("table", { class: "table", testid: "ticket-actions" },
            h("thead", {}, h("tr", {}, ["When", "Action", "Actor", "Decision", "Deciding rules", "Status", "Why"].map((x) => h("th", {}, x)))),
            h("tbody", {}, t.actions.map((a) => h("tr", {},
              h("td", {}, fmtTime(a.createdAt)),
              h("td", {}, label(enumValue(a.type)), a.amount !== null ? ` ${a.amount}` : ""),
              h("td", {}, label(enumValue(a.actor))),
              h("td", {}, effectBadge(a.decision.effect), a.decision.handoff ? h("span", { class: "badge warn" }, "handoff") : null),
              h("td", { class: "mono" }, a.decision.decidingRules.join(", ") || "default"),
              h("td", {}, label(enumValue(a.status))),
              h("td", { class: "small" }, a.reason || a.decision.explanation)))))
        : h("p", { class: "muted" }, "No actions requested.")),
    h("section", { class: "card" }, h("h2", {}, "Audit trail"),
      audit.length
        ? h("table", { class: "table", testid: "ticket-audit" },
            h("thead", {}, h("tr", {}, ["When", "What", "Who", "Ruleset", "Change"].map((x) => h("th", {}, x)))),
            h("tbody", {}, audit.map((e) => h("tr", {},
              h("td", {}, fmtTime(e.createdAt)),
              h("td", {}, label(e.kind)),
              h("td", {}, label(enumValue(e.actor))),
              h("td", {}, e.rulesetVersion ?? "default"),
              h("td", { class: "small" }, change(e))))))
        : h("p", { class: "muted" }, "No audit entries.")));
}

function conf(value) {
  return value === null || value === undefined ? "" : ` (${Math.round(value * 100)}%)`;
}

export function effectBadge(effect) {
  const value = enumValue(effect);
  return h("span", { class: `effect effect-${value}` }, label(value));
}

function change(event) {
  const parts = [];
  const before = event.before || {};
  const after = event.after || {};
  const fresh = !Object.keys(before).length;
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const a = JSON.stringify(before[key]);
    const b = JSON.stringify(after[key]);
    if (fresh) parts.push(`${key}: ${b}`);
    else if (a !== b) parts.push(`${key}: ${a ?? "–"} → ${b ?? "–"}`);
  }
  const summary = parts.join("; ");
  if (!event.decision) return summary || "–";
  return h("details", {}, h("summary", {}, summary || "decision"), h("pre", { class: "mono" }, json(event.decision)));
}
