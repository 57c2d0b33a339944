// One ticket: its facts, SLA, messages and internal notes, the actions requested with the decisions that
// governed them, and the audit trail (who did what, with names and readable times). For the roles that work
// tickets, the agent workspace (workspace.js): reply, note, assign, move along the ruleset's graph, and
// request an action with the policy's decision shown before it is sent.

import { gql } from "./api.js";
import { actionType, ageSeconds, debounce, enumValue, fmtDuration, fmtTime, h, json, label, replace } from "./dom.js";
import { TICKET_DETAIL, TICKET_EVENTS } from "./queries.js";
import { workspace } from "./workspace.js";

export function mountTicket(container, { session, onAuthError }, id) {
  const body = h("div", {}, h("p", { class: "muted" }, "loading…"));
  const live = h("span", { class: "small muted", testid: "ticket-live" });
  container.append(h("div", { class: "toolbar" }, h("a", { href: "#/queue" }, "← Queue"), h("span", { class: "spacer" }), live), body);
  let disposed = false;
  const form = {}; // the workspace's inputs, kept across live reloads

  async function load() {
    try {
      const data = await gql(TICKET_DETAIL, { id });
      if (disposed) return;
      if (!data.ticket) {
        replace(body, h("p", { class: "error", testid: "ticket-missing" }, "No such ticket."));
        return;
      }
      const names = directory(data);
      // A live reload keeps what is being written or picked (form, the workspace's state) and the focus.
      const focused = document.activeElement && body.contains(document.activeElement)
        ? document.activeElement.dataset.testid : null;
      replace(body, render(data.ticket, data.auditLog || [], names,
        workspace(data, { session, onAuthError, reload: load, form })));
      const refocus = focused && body.querySelector(`[data-testid="${focused}"]`);
      if (refocus) refocus.focus();
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

/** Names for the ids an audit entry may hold (agents, teams, this ticket's actions). */
function directory(data) {
  const names = new Map();
  for (const a of data.agents || []) names.set(a.id, a.name);
  for (const t of data.teams || []) names.set(t.id, t.name);
  for (const a of (data.ticket && data.ticket.actions) || []) {
    names.set(a.id, `${label(actionType(a))}${a.amount !== null && a.amount !== undefined ? ` ${a.amount}` : ""}`);
  }
  return names;
}

/** "Dec 3, 09:14 · 5m ago" */
export function fmtWhen(iso) {
  if (!iso) return "–";
  return `${fmtTime(iso)} · ${fmtDuration(ageSeconds(iso))} ago`;
}

function render(t, audit, names, work) {
  // The opening message is the ticket's own body; notes are internal, never sent to the customer.
  const notes = t.actions.filter((a) => actionType(a) === "note" && enumValue(a.status) === "executed")
    .map((a) => ({ authorType: "NOTE", body: (a.params && a.params.body) || "", createdAt: a.createdAt, by: a.requestedBy }));
  const thread = [
    { authorType: "CUSTOMER", body: t.body, createdAt: t.createdAt },
    ...t.messages,
    ...notes,
  ].sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)));
  const messageCount = 1 + t.messages.length;
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
      h("section", { class: "card" },
        h("h2", { testid: "messages-heading" }, `Messages (${messageCount})`, notes.length ? h("span", { class: "muted small" }, ` · ${notes.length} internal note${notes.length > 1 ? "s" : ""}`) : null),
        h("div", { class: "messages", testid: "ticket-messages" },
          thread.map((m) => h("div", { class: `message ${enumValue(m.authorType)}`, testid: m.authorType === "NOTE" ? "note" : "message" },
            h("div", { class: "msg-head" }, m.authorType === "NOTE" ? `internal note${m.by ? ` by ${m.by}` : ""}` : label(enumValue(m.authorType)), h("span", { class: "when" }, ` · ${fmtWhen(m.createdAt)}`)),
            h("div", { class: "msg-body" }, m.body)))))),
    work,
    h("section", { class: "card" }, h("h2", {}, "Actions and decisions"),
      t.actions.length
        ? h("table", { class: "table", testid: "ticket-actions" },
            h("thead", {}, h("tr", {}, ["When", "Action", "Asked by", "Decision", "Deciding rules", "Status", "Why / outcome"].map((x) => h("th", {}, x)))),
            h("tbody", {}, t.actions.map((a) => h("tr", { dataset: { actionId: a.id } },
              h("td", { class: "nowrap" }, fmtWhen(a.createdAt)),
              h("td", {}, label(actionType(a)), a.amount !== null ? ` ${a.amount}` : ""),
              h("td", {}, a.requestedBy || label(enumValue(a.actor)), h("span", { class: "muted small" }, ` (${label(enumValue(a.actor))})`)),
              h("td", {}, effectBadge(a.decision.effect), a.decision.handoff ? h("span", { class: "badge warn" }, "handoff") : null),
              h("td", { class: "mono" }, a.decision.decidingRules.join(", ") || "default"),
              h("td", { testid: "action-status" }, label(enumValue(a.status)), a.timedOutAt ? h("span", { class: "badge bad" }, "timed out") : null),
              h("td", { class: "small" }, outcome(a))))))
        : h("p", { class: "muted" }, "No actions requested.")),
    h("section", { class: "card" }, h("h2", {}, "Audit trail"),
      audit.length
        ? h("table", { class: "table", testid: "ticket-audit" },
            h("thead", {}, h("tr", {}, ["When", "What", "Who", "Ruleset", "Change"].map((x) => h("th", {}, x)))),
            h("tbody", {}, audit.map((e) => h("tr", {},
              h("td", { class: "nowrap", title: e.createdAt }, fmtWhen(e.createdAt)),
              h("td", {}, label(e.kind.replace(".", " "))),
              h("td", { testid: "audit-who" }, e.actorName, h("span", { class: "muted small" }, ` (${label(enumValue(e.actor))})`)),
              h("td", {}, e.rulesetVersion ?? "default"),
              h("td", { class: "small" }, change(e, names))))))
        : h("p", { class: "muted" }, "No audit entries.")));
}

function conf(value) {
  return value === null || value === undefined ? "" : ` (${Math.round(value * 100)}%)`;
}

export function effectBadge(effect) {
  const value = enumValue(effect);
  return h("span", { class: `effect effect-${value}` }, label(value));
}

function outcome(a) {
  const status = enumValue(a.status);
  if (status === "executing") return `handed to the partner system ${fmtWhen(a.executingAt)}; flags the ticket after ${fmtTime(a.executionDeadlineAt)}`;
  if (a.completedAt) return [`${status} (reported by ${a.completedBy || "partner"} ${fmtWhen(a.completedAt)})`, a.externalRef ? ` · ref ${a.externalRef}` : "", a.outcomeMessage ? ` · ${a.outcomeMessage}` : ""].join("");
  if (status === "rejected") return `rejected by ${a.decidedBy || "an approver"}: ${a.reason || ""}`;
  return a.decision.explanation;
}

// Keys whose values are ids: shown by name.
const ID_KEYS = new Set(["assignee_id", "team_id", "action_id", "agent_id"]);

function readable(key, value, names) {
  if (value === null || value === undefined) return "–";
  if (ID_KEYS.has(key) && typeof value === "string") return names.get(value) || value;
  return typeof value === "string" ? value : JSON.stringify(value);
}

function change(event, names) {
  const parts = [];
  const before = event.before || {};
  const after = event.after || {};
  const fresh = !Object.keys(before).length;
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const a = JSON.stringify(before[key]);
    const b = JSON.stringify(after[key]);
    const name = ID_KEYS.has(key) ? key.replace(/_id$/, "") : key.replaceAll("_", " ");
    if (fresh) parts.push(`${name}: ${readable(key, after[key], names)}`);
    else if (a !== b) parts.push(`${name}: ${readable(key, before[key], names)} → ${readable(key, after[key], names)}`);
  }
  const summary = parts.join("; ");
  if (!event.decision) return summary || "–";
  return h("details", {}, h("summary", {}, summary || "decision"), h("pre", { class: "mono" }, json(event.decision)));
}
