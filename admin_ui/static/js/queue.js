// The live queue dashboard: per-stage columns (count, oldest open ticket and its age, SLA breaches), a
// time-in-stage chart (p50/p90 per transition) and the oldest open tickets. Kept current by `queueUpdates`.

import { gql } from "./api.js";
import { barChart } from "./charts.js";
import { ageSeconds, debounce, enumValue, fmtDuration, h, label, parseTime, replace } from "./dom.js";
import { OLDEST_OPEN, QUEUE, QUEUE_UPDATES } from "./queries.js";

const CLOSED = new Set(["resolved", "closed"]);
const OLDEST_LIMIT = 12;

export function mountQueue(container, { session, onAuthError }) {
  let snapshot = null;
  let stopSubscription = null;
  let retryTimer = null;
  let disposed = false;

  const updated = h("span", { class: "muted", testid: "queue-updated" }, "loading…");
  const openCount = h("span", { class: "stat", testid: "queue-open-count" }, "–");
  const stagesEl = h("div", { class: "stages", testid: "queue-stages" });
  const chartEl = h("div", { class: "chart-box", testid: "time-in-stage" });
  const oldestEl = h("div", { testid: "oldest-open" });
  const errorEl = h("p", { class: "error", role: "alert" });

  container.append(
    h("div", { class: "page-head" },
      h("h1", {}, "Queue"),
      h("div", { class: "head-stats" }, openCount, h("span", { class: "muted" }, " open tickets · "), updated)),
    errorEl,
    stagesEl,
    h("div", { class: "two-col" },
      h("section", { class: "card" }, h("h2", {}, "Time in stage"),
        h("p", { class: "muted small" }, "Time spent before each move over the last 7 days; the slowest step is highlighted."),
        chartEl),
      h("section", { class: "card" }, h("h2", {}, "Oldest open tickets"), oldestEl)),
  );

  function fail(err) {
    if (err && err.unauthenticated) onAuthError(err);
    else errorEl.textContent = err ? String(err.message || err) : "";
  }

  function render(next) {
    if (snapshot && next.version < snapshot.version) return; // an older snapshot arriving late
    snapshot = next;
    errorEl.textContent = "";
    openCount.textContent = String(next.openCount);
    updated.textContent = `updated ${new Date().toLocaleTimeString()} · version ${next.version}`;
    replace(stagesEl, next.stages.map(stageColumn));
    renderChart(next.timeInStage);
  }

  function stageColumn(st) {
    const stage = enumValue(st.stage);
    const age = st.oldestOpenAt ? ageSeconds(st.oldestOpenAt) : st.oldestAgeSeconds;
    const closed = CLOSED.has(stage);
    return h("div", {
        class: `stage${closed ? " closed" : ""}${st.slaBreached ? " breached" : ""}`,
        testid: `queue-stage-${stage}`,
      },
      h("div", { class: "stage-name" }, label(stage)),
      h("div", { class: "stage-count", testid: `queue-count-${stage}` }, String(st.count)),
      closed ? h("div", { class: "stage-meta muted" }, "done")
        : st.oldestTicket
          ? h("a", { class: "stage-meta", href: `#/ticket/${encodeURIComponent(st.oldestTicket.id)}`, title: st.oldestTicket.subject },
              "oldest ", h("strong", { class: "age", dataset: { since: st.oldestOpenAt || "" } }, fmtDuration(age)))
          : h("div", { class: "stage-meta muted" }, "empty"),
      st.slaBreached && !closed
        ? h("div", { class: "sla-badge", testid: `queue-breached-${stage}` }, `${st.slaBreached} SLA breached`)
        : null);
  }

  function renderChart(durations) {
    if (!durations.length) {
      replace(chartEl, h("p", { class: "muted" }, "No stage changes recorded yet."));
      return;
    }
    const slowest = durations.reduce((a, b) => (b.p90Seconds > a.p90Seconds ? b : a));
    const rows = durations.map((d) => ({
      label: `${label(enumValue(d.fromStage))} → ${label(enumValue(d.toStage))}`,
      values: [d.p50Seconds, d.p90Seconds],
      highlight: d === slowest,
      title: `${d.count} moves; mean ${fmtDuration(d.meanSeconds)}`,
    }));
    replace(chartEl, barChart({
      rows,
      series: [{ name: "p50", className: "bar-a" }, { name: "p90", className: "bar-b" }],
      format: fmtDuration,
      labelWidth: 250,
      testid: "time-in-stage-chart",
    }));
  }

  async function loadOldest() {
    try {
      const data = await gql(OLDEST_OPEN, { first: OLDEST_LIMIT });
      if (disposed) return;
      renderOldest(data.oldestOpenTickets);
    } catch (err) {
      fail(err);
    }
  }

  function renderOldest(tickets) {
    if (!tickets.length) {
      replace(oldestEl, h("p", { class: "muted" }, "No open tickets."));
      return;
    }
    const now = Date.now();
    replace(oldestEl,
      h("table", { class: "table", testid: "oldest-open-table" },
      h("thead", {}, h("tr", {}, ["Ticket", "Stage", "Priority", "Open for", "In stage", "Owner"].map((t) => h("th", {}, t)))),
      h("tbody", {}, tickets.map((t) => {
        const breached = t.sla && (t.sla.breachedAt || overdue(t.sla, now));
        return h("tr", { class: breached ? "breached" : "" },
          h("td", {}, h("a", { href: `#/ticket/${encodeURIComponent(t.id)}` }, t.subject || "(no subject)"),
            t.needsHuman ? h("span", { class: "badge warn", title: "a handoff rule asked for a human" }, "human") : null),
          h("td", {}, label(enumValue(t.stage))),
          h("td", {}, h("span", { class: `prio prio-${enumValue(t.priority)}` }, label(enumValue(t.priority)))),
          h("td", { class: "nowrap" }, fmtDuration(ageSeconds(t.createdAt, now)), breached ? h("span", { class: "badge bad" }, "SLA") : null),
          h("td", { class: "nowrap" }, fmtDuration(ageSeconds(t.stageEnteredAt, now))),
          h("td", { class: "muted" }, (t.assignee && t.assignee.name) || (t.team && t.team.name) || "–"));
      }))));
  }

  const refreshOldest = debounce(loadOldest, 1500);

  function subscribe() {
    if (disposed) return;
    stopSubscription = session.client.subscribe({ query: QUEUE_UPDATES }, {
      next(payload) {
        if (payload.errors && payload.errors.length) {
          fail(new Error(payload.errors.map((e) => e.message).join("; ")));
          return;
        }
        if (payload.data && payload.data.queueUpdates) {
          render(payload.data.queueUpdates);
          refreshOldest();
        }
      },
      error(errors) {
        fail(new Error(`live updates failed: ${(errors || []).map((e) => e.message).join("; ")}`));
        retryTimer = setTimeout(subscribe, 3000);
      },
      complete() {
        // The server ended the stream (e.g. this tab fell behind): start over from a fresh snapshot.
        retryTimer = setTimeout(() => {
          load();
          subscribe();
        }, 1000);
      },
    });
  }

  async function load() {
    try {
      const data = await gql(QUEUE);
      render(data.queue);
    } catch (err) {
      fail(err);
    }
    loadOldest();
  }

  // After a reconnect, fetch a full snapshot: updates sent while the socket was down are gone.
  let wasDown = false;
  const stopStatus = session.client.onStatus((status) => {
    if (status.state === "reconnecting") wasDown = true;
    if (status.state === "connected" && wasDown) {
      wasDown = false;
      load();
    }
  });

  // Ages are relative to now: keep them current between updates.
  const ticker = setInterval(() => {
    for (const el of stagesEl.querySelectorAll(".age[data-since]")) {
      if (el.dataset.since) el.textContent = fmtDuration(ageSeconds(el.dataset.since));
    }
  }, 15_000);

  load();
  subscribe();

  return () => {
    disposed = true;
    clearTimeout(retryTimer);
    clearInterval(ticker);
    refreshOldest.cancel();
    stopStatus();
    if (stopSubscription) stopSubscription();
  };
}

function overdue(sla, now) {
  const first = sla.firstResponseDueAt && parseTime(sla.firstResponseDueAt) < now;
  const resolution = sla.resolutionDueAt && parseTime(sla.resolutionDueAt) < now;
  return Boolean(first || resolution);
}
