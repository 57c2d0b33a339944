// The ticket list: search (customer email or name, order id, tag, words), filters and sort order. The view
// lives in the URL (#/tickets?search=…&stage=…&sort=…), so a link shares it and a reload comes back to it.

import { gql } from "./api.js";
import { ageSeconds, debounce, enumValue, fmtDuration, fmtTime, h, label, replace } from "./dom.js";
import { TICKET_LIST, TICKET_LIST_OPTIONS } from "./queries.js";

const PAGE = 50;
const STAGES = ["new", "triaged", "assigned", "in_progress", "waiting_on_customer", "escalated", "resolved", "closed"];
const PRIORITIES = ["urgent", "high", "normal", "low"];
const SORTS = { created: "Created", updated: "Updated", stage_age: "Age in stage", priority: "Priority" };
// URL parameter → how it becomes part of the GraphQL filter.
const FILTERS = {
  search: (v) => ({ search: v }),
  email: (v) => ({ customerEmail: v }),
  order: (v) => ({ orderId: v }),
  tag: (v) => ({ tag: v }),
  stage: (v) => ({ stage: v.toUpperCase() }),
  priority: (v) => ({ priority: v.toUpperCase() }),
  category: (v) => ({ category: v }),
  team: (v) => ({ teamId: v }),
  assignee: (v) => ({ assigneeId: v }),
  human: (v) => ({ needsHuman: v === "yes" }),
  sla: (v) => ({ slaBreached: v === "breached" }),
  from: (v) => ({ createdAfter: new Date(`${v}T00:00:00Z`).toISOString() }),
  to: (v) => ({ createdBefore: new Date(Date.parse(`${v}T00:00:00Z`) + 86_400_000).toISOString() }),
};

/** The view's state from the hash's query string (#/tickets?…). */
export function viewFromHash(hash = window.location.hash) {
  const query = hash.includes("?") ? hash.slice(hash.indexOf("?") + 1) : "";
  return new URLSearchParams(query);
}

function toFilter(params) {
  let filter = {};
  for (const [name, build] of Object.entries(FILTERS)) {
    const value = params.get(name);
    if (value) filter = { ...filter, ...build(value) };
  }
  return filter;
}

export function mountTickets(container, { onAuthError }) {
  let params = viewFromHash();
  let disposed = false;
  let request = 0;
  const errorEl = h("p", { class: "error", role: "alert", testid: "tickets-error" });
  const countEl = h("span", { class: "stat", testid: "tickets-count" }, "–");
  const listEl = h("div", { testid: "tickets-list" });
  const moreEl = h("div", { class: "more" });
  const controls = {};

  function input(name, attrs) {
    const el = h("input", { ...attrs, value: params.get(name) || "", testid: `tickets-${name}` });
    el.addEventListener("input", debounce(() => set(name, el.value.trim()), 300));
    controls[name] = el;
    return h("label", { class: "field" }, attrs.title, el);
  }

  // fallback: the value shown when the URL has none (sort and order); without one, "any" is offered.
  function select(name, title, options, fallback = "") {
    const el = h("select", { testid: `tickets-${name}` },
      fallback ? null : h("option", { value: "" }, "any"),
      options.map(([value, text]) => h("option", { value }, text)));
    el.value = params.get(name) || fallback;
    el.addEventListener("change", () => set(name, el.value));
    controls[name] = el;
    return h("label", { class: "field" }, title, el);
  }

  function set(name, value) {
    if (value) params.set(name, value);
    else params.delete(name);
    // replaceState: the URL follows the view without a hashchange (which would rebuild the page).
    const query = params.toString();
    window.history.replaceState(null, "", `#/tickets${query ? `?${query}` : ""}`);
    load();
  }

  const teamSelect = select("team", "Team", []);
  const assigneeSelect = select("assignee", "Assignee", []);
  const categorySelect = select("category", "Category", []);
  container.append(
    h("div", { class: "page-head" }, h("h1", {}, "Tickets"),
      h("div", { class: "head-stats" }, countEl, h("span", { class: "muted" }, " matching"))),
    h("section", { class: "card filters", testid: "tickets-filters" },
      input("search", { title: "Search", type: "search", placeholder: "email, name, order id, tag or words", class: "wide" }),
      input("email", { title: "Customer email", type: "text" }),
      input("order", { title: "Order id", type: "text" }),
      input("tag", { title: "Tag", type: "text" }),
      select("stage", "Stage", STAGES.map((s) => [s, label(s)])),
      select("priority", "Priority", PRIORITIES.map((p) => [p, p])),
      categorySelect, teamSelect, assigneeSelect,
      select("human", "Needs human", [["yes", "yes"], ["no", "no"]]),
      select("sla", "SLA", [["breached", "breached"], ["ok", "not breached"]]),
      input("from", { title: "Created from", type: "date" }),
      input("to", { title: "Created to", type: "date" }),
      select("sort", "Sort by", Object.entries(SORTS), "created"),
      select("dir", "Order", [["desc", "descending"], ["asc", "ascending"]], "desc"),
      h("button", { type: "button", testid: "tickets-clear", onclick: () => {
        params = new URLSearchParams();
        for (const [name, el] of Object.entries(controls)) el.value = { sort: "created", dir: "desc" }[name] || "";
        set("", "");
      } }, "Clear")),
    errorEl, h("section", { class: "card" }, listEl, moreEl),
  );

  async function loadOptions() {
    try {
      const data = await gql(TICKET_LIST_OPTIONS);
      if (disposed) return;
      const fill = (name, items) => {
        const el = controls[name];
        el.append(...items.map(([value, text]) => h("option", { value }, text)));
        el.value = params.get(name) || "";
      };
      fill("team", data.teams.map((t) => [t.id, t.name]));
      fill("assignee", data.agents.map((a) => [a.id, a.name]));
      fill("category", data.classifierInfo.labels.map((c) => [c, label(c)]));
    } catch (err) {
      fail(err);
    }
  }

  function fail(err) {
    if (err && err.unauthenticated) onAuthError(err);
    else errorEl.textContent = err ? String(err.message || err) : "";
  }

  function variables(after) {
    return {
      filter: toFilter(params),
      orderBy: { field: (params.get("sort") || "created").toUpperCase(), direction: (params.get("dir") || "desc").toUpperCase() },
      first: PAGE,
      after,
    };
  }

  async function load(after = null) {
    const mine = ++request;
    try {
      const data = await gql(TICKET_LIST, variables(after));
      if (disposed || mine !== request) return; // a later change of the filters has overtaken this one
      errorEl.textContent = "";
      countEl.textContent = String(data.tickets.totalCount);
      render(data.tickets, Boolean(after));
    } catch (err) {
      if (mine === request) fail(err);
    }
  }

  function render(conn, appending) {
    const now = Date.now();
    const rows = conn.edges.map(({ node: t }) =>
      h("tr", { testid: "ticket-row", dataset: { id: t.id } },
        h("td", {}, h("a", { href: `#/ticket/${encodeURIComponent(t.id)}` }, t.subject || "(no subject)"),
          t.needsHuman ? h("span", { class: "badge warn" }, "human") : null,
          t.sla && t.sla.breachedAt ? h("span", { class: "badge bad" }, "SLA") : null),
        h("td", { class: "muted" }, [t.customer.name, t.customer.email].filter(Boolean).join(" · ") || "–"),
        h("td", { class: "mono" }, t.order.id || "–"),
        h("td", {}, label(enumValue(t.stage))),
        h("td", {}, h("span", { class: `prio prio-${enumValue(t.priority)}` }, label(enumValue(t.priority)))),
        h("td", {}, label(t.category)),
        h("td", { class: "muted" }, (t.assignee && t.assignee.name) || (t.team && t.team.name) || "–"),
        h("td", { class: "nowrap" }, fmtTime(t.createdAt)),
        h("td", { class: "nowrap" }, fmtDuration(ageSeconds(t.stageEnteredAt, now)))));
    if (appending) {
      listEl.querySelector("tbody").append(...rows);
    } else if (!rows.length) {
      replace(listEl, h("p", { class: "muted", testid: "tickets-empty" }, "No tickets match."));
    } else {
      replace(listEl, h("table", { class: "table", testid: "tickets-table" },
        h("thead", {}, h("tr", {}, ["Ticket", "Customer", "Order", "Stage", "Priority", "Category", "Owner", "Created", "In stage"]
          .map((t) => h("th", {}, t)))),
        h("tbody", {}, rows)));
    }
    replace(moreEl, conn.pageInfo.hasNextPage
      ? h("button", { type: "button", testid: "tickets-more", onclick: () => load(conn.pageInfo.endCursor) }, "More")
      : null);
  }

  loadOptions();
  load();
  return () => {
    disposed = true;
  };
}
