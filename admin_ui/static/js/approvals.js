// The approval inbox: requests (from the AI, an agent or a partner system) waiting for a decision this key's
// role may take, oldest first. Each shows what is proposed, why the rules want a human, the facts they read
// and the ticket's last messages; approve, or reject with a note (required). Live: every change to the inbox
// (a new request, a decision taken in another tab or by someone else) reloads the list.
//
// Keyboard: j / k (or ↓ / ↑) move between requests, a approves the selected one, r goes to its rejection
// note (Enter in the note rejects, Escape leaves it), o opens its ticket.

import { gql, payloadError } from "./api.js";
import { actionType, ageSeconds, debounce, enumValue, fmtDuration, fmtTime, h, json, label, replace } from "./dom.js";
import { APPROVE, PENDING_ACTIONS, REJECT } from "./queries.js";
import { effectBadge } from "./ticket.js";

const PAGE = 50;
const LAST_MESSAGES = 3;

export function mountApprovals(container, { session, onAuthError }) {
  const countEl = h("span", { class: "stat", testid: "approvals-count" }, "–");
  const listEl = h("div", { class: "approvals", testid: "approvals-list" }, h("p", { class: "muted" }, "loading…"));
  const errorEl = h("p", { class: "error", role: "alert", testid: "approvals-error" });
  const liveEl = h("span", { class: "muted small", testid: "approvals-live", "aria-live": "polite" });
  container.append(
    h("div", { class: "page-head" },
      h("h1", {}, "Approvals"),
      h("div", { class: "head-stats" }, countEl, h("span", { class: "muted" }, " waiting for your role · "), liveEl)),
    h("p", { class: "muted small" }, "Keys: j/k move · a approve · r reject with a note · o open the ticket"),
    errorEl,
    listEl,
  );
  let disposed = false;
  let items = [];
  let selected = 0;

  async function load() {
    try {
      const data = await gql(PENDING_ACTIONS, { first: PAGE });
      if (disposed) return;
      const focusedId = items[selected] && items[selected].id;
      items = data.pendingActions.edges.map((e) => e.node);
      countEl.textContent = String(data.pendingActions.totalCount);
      const kept = items.findIndex((a) => a.id === focusedId);
      selected = kept >= 0 ? kept : Math.min(selected, Math.max(0, items.length - 1));
      render();
    } catch (err) {
      if (err.unauthenticated) onAuthError(err);
      else errorEl.textContent = err.message;
    }
  }

  function render() {
    const typing = document.activeElement && document.activeElement.tagName === "TEXTAREA"
      && listEl.contains(document.activeElement) ? document.activeElement : null;
    if (typing && typing.value) {
      // Never throw away a note being written: the list catches up once the note is decided on (decide()
      // renders) or abandoned empty. (Not on every blur: a click on Reject blurs the note first.)
      typing.addEventListener("blur", () => { if (!disposed && !typing.value.trim()) render(); }, { once: true });
      return;
    }
    if (!items.length) {
      replace(listEl, h("p", { class: "muted", testid: "approvals-empty" }, "Nothing waits for your decision."));
      return;
    }
    replace(listEl, items.map((a, i) => card(a, i)));
  }

  function card(a, index) {
    const t = a.ticket || {};
    const note = h("textarea", {
      class: "reject-note", rows: 2, placeholder: "Why not? (required to reject)", testid: "reject-note",
      "aria-label": "rejection note",
    });
    const approveBtn = h("button", { class: "primary", type: "button", testid: "approve-button" }, "Approve");
    const rejectBtn = h("button", { class: "danger", type: "button", testid: "reject-button", disabled: true }, "Reject");
    const status = h("span", { class: "small", role: "status" });
    note.addEventListener("input", () => { rejectBtn.disabled = !note.value.trim(); });
    note.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        if (note.value.trim()) decide(a, "reject", note.value.trim(), status);
      } else if (event.key === "Escape") {
        note.blur();
        el.focus();
      }
    });
    approveBtn.addEventListener("click", () => decide(a, "approve", null, status));
    rejectBtn.addEventListener("click", () => decide(a, "reject", note.value.trim(), status));
    const messages = [{ authorType: "CUSTOMER", body: t.body, createdAt: t.createdAt }, ...(t.messages || [])];
    const amount = a.amount !== null && a.amount !== undefined
      ? ` ${a.amount.toFixed(2)}${t.order && t.order.currency ? ` ${t.order.currency}` : ""}` : "";
    const el = h("article", {
      class: `card approval${index === selected ? " selected" : ""}`, tabindex: 0, testid: "approval",
      dataset: { actionId: a.id }, "aria-label": `${label(enumValue(a.actor))} proposes ${label(actionType(a))}`,
      onfocus: () => select(index, false),
    },
      h("div", { class: "approval-head" },
        h("strong", { testid: "approval-proposal" },
          `${label(enumValue(a.actor))} proposes ${label(actionType(a))}${amount}`),
        h("span", { class: "muted small" }, ` · asked by ${a.requestedBy || label(enumValue(a.actor))}`,
          ` · ${fmtTime(a.createdAt)} (${fmtDuration(ageSeconds(a.createdAt))} ago)`),
        h("span", { class: "spacer" }),
        h("a", { href: `#/ticket/${encodeURIComponent(t.id)}`, testid: "approval-ticket" }, t.subject || "(no subject)")),
      h("div", { class: "approval-body" },
        h("div", {},
          h("h3", {}, "Why it needs approval"),
          h("p", { testid: "approval-why" }, effectBadge(a.decision.effect), " ", a.decision.explanation),
          a.handoffReason ? h("p", { class: "small" }, h("span", { class: "badge warn" }, "handoff"), " ", a.handoffReason) : null,
          h("p", { class: "small muted" }, "Deciding: ",
            h("span", { class: "mono" }, a.decision.decidingRules.join(", ") || "default"),
            " · matched: ", h("span", { class: "mono" }, a.decision.matchedRules.join(", ") || "none"),
            " · approvers: ", a.decision.approvers.join(", ")),
          Object.keys(a.params || {}).length ? h("p", { class: "small" }, "Params: ", h("span", { class: "mono" }, JSON.stringify(a.params))) : null,
          h("details", {}, h("summary", { class: "small" }, "Facts the rules read"), h("pre", { class: "mono" }, json(a.facts)))),
        h("div", {},
          h("h3", {}, "Last messages"),
          h("div", { class: "messages compact" }, messages.slice(-LAST_MESSAGES).map((m) =>
            h("div", { class: `message ${enumValue(m.authorType)}` },
              h("div", { class: "msg-head" }, `${label(enumValue(m.authorType))} · ${fmtTime(m.createdAt)}`),
              h("div", { class: "msg-body" }, m.body)))))),
      h("div", { class: "approval-actions" }, approveBtn, note, rejectBtn, status));
    el._note = note;
    el._approve = () => decide(a, "approve", null, status);
    return el;
  }

  async function decide(a, how, reason, status) {
    status.textContent = how === "approve" ? "approving…" : "rejecting…";
    status.className = "small";
    try {
      const data = how === "approve"
        ? (await gql(APPROVE, { id: a.id })).approveAction
        : (await gql(REJECT, { id: a.id, reason })).rejectAction;
      const err = payloadError(data);
      if (err) throw err;
      liveEl.textContent = `${how === "approve" ? "approved" : "rejected"} ${label(actionType(a))} — now ${label(enumValue(data.action.status))}`;
      items = items.filter((x) => x.id !== a.id);
      selected = Math.min(selected, Math.max(0, items.length - 1));
      countEl.textContent = String(Math.max(0, Number(countEl.textContent) - 1));
      render();
      focusSelected();
    } catch (err) {
      if (err.unauthenticated) onAuthError(err);
      status.textContent = err.message;
      status.className = "small error";
    }
  }

  function cards() {
    return [...listEl.querySelectorAll("[data-testid=approval]")];
  }

  function select(index, focus = true) {
    const all = cards();
    if (!all.length) return;
    selected = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((el, i) => el.classList.toggle("selected", i === selected));
    if (focus) all[selected].focus();
  }

  function focusSelected() {
    const all = cards();
    if (all.length) all[Math.min(selected, all.length - 1)].focus();
  }

  function onKey(event) {
    if (event.target && ["TEXTAREA", "INPUT", "SELECT"].includes(event.target.tagName)) return;
    if (event.metaKey || event.ctrlKey || event.altKey) return;
    const current = cards()[selected];
    if (event.key === "j" || event.key === "ArrowDown") select(selected + 1);
    else if (event.key === "k" || event.key === "ArrowUp") select(selected - 1);
    else if (event.key === "a" && current) current._approve();
    else if (event.key === "r" && current) current._note.focus();
    else if (event.key === "o" && current) current.querySelector("[data-testid=approval-ticket]").click();
    else return;
    event.preventDefault();
  }
  document.addEventListener("keydown", onKey);

  const reload = debounce(load, 150);
  const stopWatching = session.inbox.listen(({ update }) => {
    if (!update) return;
    liveEl.textContent = `updated ${new Date().toLocaleTimeString()}: ${label(update.kind)}`;
    reload();
  });

  load();
  return () => {
    disposed = true;
    reload.cancel();
    stopWatching();
    document.removeEventListener("keydown", onKey);
  };
}
