// The agent workspace on the ticket page: reply to the customer, add an internal note, assign (team and
// agent), move the ticket along the edges the active ruleset's graph allows from its stage (one button per
// edge), and request an action (a refund with an amount, say) with the policy's decision for this key shown
// before the request is sent (`previewAction`, a dry run). What a role may not do is not offered; the server
// checks every call again.

import { gql, payloadError } from "./api.js";
import { debounce, enumValue, h, label, replace } from "./dom.js";
import { ADD_MESSAGE, ASSIGN, PREVIEW_ACTION, REQUEST_ACTION, TRANSITION } from "./queries.js";

const REQUESTABLE = [
  "REFUND", "CANCEL_ORDER", "RESHIP_ORDER", "CHANGE_SHIPPING_ADDRESS", "ISSUE_DISCOUNT", "TAG", "SET_PRIORITY", "CLOSE",
];
const WITH_AMOUNT = new Set(["REFUND", "ISSUE_DISCOUNT", "CANCEL_ORDER", "RESHIP_ORDER"]);

export function workspace(data, { session, onAuthError, reload, form = {} }) {
  const t = data.ticket;
  const canWork = session.can("work");
  const canRequest = session.can("request");
  if (!canWork && !canRequest) return null;

  function status(testid) {
    return h("span", { class: "small", role: "status", testid });
  }

  async function run(statusEl, doing, fn) {
    statusEl.className = "small";
    statusEl.textContent = doing;
    try {
      const payload = await fn();
      const err = payloadError(payload);
      if (err) throw err;
      statusEl.textContent = "done";
      reload();
      return payload;
    } catch (err) {
      if (err.unauthenticated) onAuthError(err);
      statusEl.className = "small error";
      statusEl.textContent = err.message;
      return null;
    }
  }

  // -- reply and note ------------------------------------------------------------------------------------
  const text = h("textarea", { testid: "composer", "aria-label": "message", placeholder: "Write a reply to the customer, or an internal note…" });
  text.value = form.text || "";
  text.addEventListener("input", () => { form.text = text.value; });
  const composeStatus = status("composer-status");
  const replyBtn = h("button", { class: "primary", type: "button", testid: "reply-button" }, "Send reply");
  const noteBtn = h("button", { type: "button", testid: "note-button" }, "Add internal note");
  replyBtn.addEventListener("click", async () => {
    const body = text.value.trim();
    if (!body) return;
    const done = await run(composeStatus, "sending…", async () =>
      (await gql(ADD_MESSAGE, { input: { ticketId: t.id, body } })).addMessage);
    if (done) text.value = form.text = "";
  });
  noteBtn.addEventListener("click", async () => {
    const body = text.value.trim();
    if (!body) return;
    const done = await run(composeStatus, "saving the note…", async () =>
      (await gql(REQUEST_ACTION, { input: { ticketId: t.id, type: "NOTE", params: { body } } })).requestAction);
    if (done) text.value = form.text = "";
  });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) replyBtn.click();
  });
  const compose = h("section", { class: "card" }, h("h2", {}, "Reply"),
    text,
    h("div", { class: "row" }, canWork ? replyBtn : null, noteBtn, composeStatus,
      h("span", { class: "muted small" }, canWork ? "Ctrl+Enter sends the reply" : "")));

  // -- move stage ---------------------------------------------------------------------------------------
  const stage = enumValue(t.stage);
  const edges = ((data.ruleset && data.ruleset.transitions) || []).find((e) => enumValue(e.fromStage) === stage);
  const moveStatus = status("move-status");
  const moves = (edges ? edges.to.map(enumValue) : []).map((to) =>
    h("button", {
      type: "button", testid: `move-${to}`,
      onclick: () => run(moveStatus, `moving to ${label(to)}…`, async () =>
        (await gql(TRANSITION, { input: { ticketId: t.id, to: to.toUpperCase(), expectedVersion: t.version } })).transitionTicket),
    }, `→ ${label(to)}`));
  const move = h("div", {}, h("h3", {}, `Move from ${label(stage)}`),
    moves.length ? h("div", { class: "row stage-buttons", testid: "stage-buttons" }, moves, moveStatus)
      : h("p", { class: "muted small" }, "The ruleset allows no move from this stage."));

  // -- assign -------------------------------------------------------------------------------------------
  const teamSelect = h("select", { testid: "assign-team", "aria-label": "team" },
    h("option", { value: "" }, "— team —"),
    (data.teams || []).map((team) => h("option", { value: team.id, selected: t.team && t.team.name === team.name }, team.name)));
  const agentSelect = h("select", { testid: "assign-agent", "aria-label": "agent" });
  function fillAgents() {
    const team = teamSelect.value;
    const agents = (data.agents || []).filter((a) => !team || a.teams.some((x) => x.id === team));
    replace(agentSelect, h("option", { value: "" }, "— agent —"),
      agents.map((a) => h("option", { value: a.id, selected: t.assignee && t.assignee.name === a.name },
        `${a.name}${a.available ? "" : " (away)"}`)));
  }
  if (form.team !== undefined) teamSelect.value = form.team;
  teamSelect.addEventListener("change", () => { form.team = teamSelect.value; form.agent = undefined; fillAgents(); });
  fillAgents();
  if (form.agent !== undefined) agentSelect.value = form.agent;
  agentSelect.addEventListener("change", () => { form.agent = agentSelect.value; });
  const assignStatus = status("assign-status");
  const assignBtn = h("button", { type: "button", testid: "assign-button" }, "Assign");
  assignBtn.addEventListener("click", () => {
    const input = { ticketId: t.id, expectedVersion: t.version };
    if (teamSelect.value) input.teamId = teamSelect.value;
    if (agentSelect.value) input.agentId = agentSelect.value;
    if (!input.teamId && !input.agentId) {
      assignStatus.textContent = "pick a team or an agent";
      return;
    }
    run(assignStatus, "assigning…", async () => (await gql(ASSIGN, { input })).assignTicket);
  });
  const assign = h("div", {}, h("h3", {}, "Assign"), h("div", { class: "row" }, teamSelect, agentSelect, assignBtn, assignStatus));

  // -- request an action, with the decision first -------------------------------------------------------
  const typeSelect = h("select", { testid: "action-type", "aria-label": "action" },
    REQUESTABLE.map((type) => h("option", { value: type }, label(type.toLowerCase()))));
  const amount = h("input", { type: "number", min: "0", step: "0.01", testid: "action-amount", "aria-label": "amount", placeholder: "amount" });
  const preview = h("div", { class: "preview small", testid: "action-preview", "aria-live": "polite" }, "Pick an action to see what the rules decide.");
  const requestStatus = status("request-status");
  const sendBtn = h("button", { class: "primary", type: "button", testid: "request-button", disabled: true }, "Send request");
  let decided = null;

  function input() {
    const type = typeSelect.value;
    const value = { ticketId: t.id, type };
    if (WITH_AMOUNT.has(type) && amount.value !== "") value.amount = Number(amount.value);
    return value;
  }

  async function check() {
    amount.hidden = !WITH_AMOUNT.has(typeSelect.value);
    sendBtn.disabled = true;
    const asked = input();
    const key = JSON.stringify(asked);
    replace(preview, "checking the rules…");
    try {
      const decision = (await gql(PREVIEW_ACTION, { input: asked })).previewAction;
      if (JSON.stringify(input()) !== key) return; // changed meanwhile: a newer check is on its way
      decided = key;
      const effect = enumValue(decision.effect);
      replace(preview,
        h("strong", { testid: "preview-effect", dataset: { effect } },
          { allow: "Allowed: it runs when sent", require_approval: `Needs approval by ${decision.approvers.join(" or ")}`, deny: "Denied by the rules" }[effect] || effect),
        " — ", decision.explanation,
        h("div", { class: "muted" }, "Deciding rules: ", h("span", { class: "mono" }, decision.decidingRules.join(", ") || "default")));
      sendBtn.disabled = effect === "deny";
      sendBtn.textContent = effect === "require_approval" ? "Send for approval" : "Send request";
    } catch (err) {
      if (err.unauthenticated) onAuthError(err);
      replace(preview, h("span", { class: "error" }, err.message));
    }
  }
  const recheck = debounce(check, 250);
  if (form.type) typeSelect.value = form.type;
  if (form.amount !== undefined) amount.value = form.amount;
  typeSelect.addEventListener("change", () => { form.type = typeSelect.value; recheck(); });
  amount.addEventListener("input", () => { form.amount = amount.value; recheck(); });
  sendBtn.addEventListener("click", async () => {
    if (decided !== JSON.stringify(input())) return;
    sendBtn.disabled = true;
    const result = await run(requestStatus, "sending…", async () =>
      (await gql(REQUEST_ACTION, { input: input() })).requestAction);
    if (result) requestStatus.textContent = `sent: ${label(enumValue(result.action.status))}`;
  });
  const request = h("section", { class: "card" }, h("h2", {}, "Request an action"),
    h("div", { class: "row" }, typeSelect, amount, sendBtn, requestStatus),
    preview);
  check();

  return h("div", { class: "workspace", testid: "workspace" },
    compose,
    h("div", {},
      canWork ? h("section", { class: "card" }, h("h2", {}, "Move and assign"), move, session.can("assign") ? assign : null) : null,
      request));
}
