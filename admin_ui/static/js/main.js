// Boot: sign-in with an API key, the header (merchant, role, connection status, the approval inbox's count),
// and a hash router over the screens (#/queue, #/approvals, #/rules, #/ticket/<id>, #/webhooks, #/classifier). Each screen's
// mount() returns its own cleanup.

import { ApiError, getKey, gql, setKey } from "./api.js";
import { mountApprovals } from "./approvals.js";
import { replace } from "./dom.js";
import { InboxWatcher } from "./inbox.js";
import { ME } from "./queries.js";
import { mountQueue } from "./queue.js";
import { mountReports } from "./reports.js";
import { mountRules } from "./rules.js";
import { mountTicket } from "./ticket.js";
import { mountModels } from "./models.js";
import { mountWebhooks } from "./webhooks.js";
import { mountTickets } from "./tickets.js";
import { SubscriptionClient } from "./ws.js";

// What each role may do in this UI, mirroring the API's role table (every key reads the queue and may
// try drafts; publishing and rollback are admin-only; viewers only read; a rule's `approvers` name the roles
// that decide each request, and the inbox lists only those). The server checks again on every call.
const CAPABILITIES = {
  admin: ["queue", "simulate", "publish", "approve", "work", "assign", "request", "webhooks", "models"],
  agent: ["queue", "simulate", "approve", "work", "assign", "request"],
  viewer: ["queue", "simulate"],
  ai: ["queue", "simulate", "approve", "work", "assign", "request"],
  partner: ["queue", "simulate", "approve", "request"],
};

const $ = (id) => document.getElementById(id);

const session = {
  me: null,
  client: null,
  inbox: null,
  can(capability) {
    const role = this.me ? String(this.me.role).toLowerCase() : "";
    return (CAPABILITIES[role] || []).includes(capability);
  },
};

let unmountView = null;

function showConnection(status) {
  const el = $("conn");
  el.dataset.state = status.state;
  const text = {
    idle: "live updates idle",
    connecting: "connecting…",
    connected: "live",
    reconnecting:
      status.retryInMs !== undefined
        ? `connection lost — reconnecting in ${Math.ceil(status.retryInMs / 1000)}s (attempt ${status.attempt})`
        : `connection lost — reconnecting (attempt ${status.attempt})`,
    failed: `disconnected: ${status.reason || "refused"}`,
    closed: "disconnected",
  }[status.state];
  el.textContent = text || status.state;
  el.title = status.reason || "";
}

async function signIn(key) {
  const data = await gql(ME, {}, { key });
  setKey(key);
  session.me = data.me;
  session.client = new SubscriptionClient({ getKey, onStatus: showConnection });
  showConnection(session.client.status);
  if (session.can("approve")) {
    session.inbox = new InboxWatcher(session.client);
    session.inbox.listen(({ count }) => {
      $("approvals-badge").textContent = String(count);
      $("approvals-badge").hidden = false;
    });
    session.inbox.start();
  }
  $("who-merchant").textContent = data.me.merchant.name;
  $("who-role").textContent = String(data.me.role).toLowerCase();
  $("who").hidden = false;
  $("conn").hidden = false;
  $("nav").hidden = false;
  for (const link of $("nav").querySelectorAll("[data-needs]")) {
    link.hidden = !session.can(link.dataset.needs);
  }
  $("signin").hidden = true;
  route();
}

function signOut(message = "") {
  if (unmountView) unmountView();
  unmountView = null;
  if (session.inbox) session.inbox.dispose();
  session.inbox = null;
  $("approvals-badge").hidden = true;
  if (session.client) session.client.dispose();
  session.client = null;
  session.me = null;
  setKey(null);
  $("who").hidden = true;
  $("conn").hidden = true;
  $("nav").hidden = true;
  replace($("view"));
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("api-key").value = "";
  $("api-key").focus();
}

function route() {
  if (!session.me) return;
  if (unmountView) unmountView();
  unmountView = null;
  const view = $("view");
  replace(view);
  const hash = window.location.hash || "#/queue";
  const [, name, arg] = hash.match(/^#\/([^/?]*)\/?(.*)$/) || [null, "queue", ""];
  for (const link of $("nav").querySelectorAll("a")) {
    link.classList.toggle("active", link.dataset.route === name);
  }
  const ctx = { session, onAuthError: (err) => signOut(err.message) };
  if (name === "rules" && session.can("simulate")) unmountView = mountRules(view, ctx);
  else if (name === "approvals" && session.can("approve")) unmountView = mountApprovals(view, ctx);
  else if (name === "webhooks" && session.can("webhooks")) unmountView = mountWebhooks(view, ctx);
  else if (name === "classifier" && session.can("models")) unmountView = mountModels(view, ctx);
  else if (name === "ticket" && arg) unmountView = mountTicket(view, ctx, decodeURIComponent(arg));
  else if (name === "tickets") unmountView = mountTickets(view, ctx);
  else if (name === "reports") unmountView = mountReports(view, ctx);
  else unmountView = mountQueue(view, ctx);
}

async function boot() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    $("signin-error").textContent = "";
    try {
      await signIn(key);
    } catch (err) {
      $("signin-error").textContent =
        err instanceof ApiError && err.unauthenticated ? "That key was not accepted." : err.message;
    }
  });
  $("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  const stored = getKey();
  if (stored) {
    try {
      await signIn(stored);
      return;
    } catch (err) {
      signOut(err.message);
      return;
    }
  }
  signOut();
}

// Exposed for the end-to-end tests (dropping the socket on purpose) and for debugging in the console.
window.bookbag = session;

boot();
