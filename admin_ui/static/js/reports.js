// Reports over a period, by day or week, optionally split by team, category, priority or channel: volume and
// backlog, time between stages (the slowest step highlighted, as on the queue), first response and resolution,
// SLA attainment, AI autonomy and classifier corrections. Each section: a chart, its table, a CSV download.
// The choices live in the URL (#/reports?days=30&g=week&split=team) like the ticket list's.

import { gql } from "./api.js";
import { barChart } from "./charts.js";
import { enumValue, fmtDuration, h, label, replace } from "./dom.js";
import { REPORT } from "./queries.js";
import { viewFromHash } from "./tickets.js";

const PERIODS = [["7", "last 7 days"], ["30", "last 30 days"], ["90", "last 90 days"], ["365", "last 365 days"]];
const SPLITS = [["none", "nothing"], ["team", "team"], ["category", "category"], ["priority", "priority"], ["channel", "channel"]];
const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)}%`);
const isoDay = (d) => d.toISOString().slice(0, 10);

/** Rows of objects → CSV text (RFC 4180 quoting). */
export function toCsv(columns, rows) {
  const cell = (v) => {
    const text = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return [columns.map((c) => cell(c.title)), ...rows.map((r) => columns.map((c) => cell(c.csv ? c.csv(r) : r[c.key])))]
    .map((line) => line.join(","))
    .join("\r\n") + "\r\n";
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function mountReports(container, { onAuthError }) {
  const params = viewFromHash();
  let disposed = false;
  let request = 0;
  const errorEl = h("p", { class: "error", role: "alert", testid: "report-error" });
  const body = h("div", { testid: "report-body" }, h("p", { class: "muted" }, "loading…"));
  const periodEl = h("span", { class: "muted", testid: "report-period" });

  function choice(name, title, options, fallback) {
    const el = h("select", { testid: `report-${name}` }, options.map(([value, text]) => h("option", { value }, text)));
    el.value = params.get(name) || fallback;
    el.addEventListener("change", () => {
      params.set(name, el.value);
      window.history.replaceState(null, "", `#/reports?${params.toString()}`);
      load();
    });
    return h("label", { class: "field" }, title, el);
  }

  container.append(
    h("div", { class: "page-head" }, h("h1", {}, "Reports"), periodEl),
    h("section", { class: "card filters", testid: "report-controls" },
      choice("days", "Period", PERIODS, "30"),
      choice("g", "By", [["day", "day"], ["week", "week"]], "day"),
      choice("split", "Split by", SPLITS, "none")),
    errorEl,
    body,
  );

  function variables() {
    const days = Number(params.get("days") || "30");
    const end = new Date();
    const start = new Date(end.getTime() - (days - 1) * 86_400_000);
    return {
      start: isoDay(start),
      end: isoDay(end),
      granularity: (params.get("g") || "day").toUpperCase(),
      split: (params.get("split") || "none").toUpperCase(),
    };
  }

  async function load() {
    const mine = ++request;
    const vars = variables();
    try {
      const data = await gql(REPORT, vars);
      if (disposed || mine !== request) return;
      errorEl.textContent = "";
      render(plainValues(data.report));
    } catch (err) {
      if (mine !== request) return;
      if (err && err.unauthenticated) onAuthError(err);
      else errorEl.textContent = String(err.message || err);
    }
  }

  function render(report) {
    const split = String(report.split).toLowerCase();
    const labels = Object.fromEntries(report.groups.map((g) => [g.value, g.label]));
    const groupName = (g) => labels[g] ?? (g || "(none)");
    const grouped = split !== "none";
    periodEl.textContent = `${report.start} – ${report.end}, by ${String(report.granularity).toLowerCase()}` +
      (grouped ? `, split by ${split}` : "");
    const file = (name) => `bookbag-${name}-${report.start}-${report.end}-${String(report.granularity).toLowerCase()}-${split}.csv`;
    const group = { title: split, key: "group", csv: (r) => groupName(r.group), cell: (r) => groupName(r.group) };
    const withGroup = (columns) => (grouped ? [group, ...columns] : columns);

    // Volume: per bucket (summed over the groups) or, split, per group over the period.
    const byBucket = new Map();
    for (const r of report.volume) {
      const row = byBucket.get(r.bucket) || { bucket: r.bucket, created: 0, closed: 0, backlog: 0 };
      row.created += r.created;
      row.closed += r.closed;
      row.backlog += r.backlog;
      byBucket.set(r.bucket, row);
    }
    const volumeChart = grouped
      ? report.groups.map((g) => {
          const rows = report.volume.filter((r) => r.group === g.value);
          const last = rows[rows.length - 1];
          return {
            label: g.label,
            values: [sum(rows, "created"), sum(rows, "closed")],
            title: `backlog at the end: ${last ? last.backlog : 0}`,
          };
        })
      : [...byBucket.values()].map((r) => ({ label: r.bucket, values: [r.created, r.closed], title: `backlog ${r.backlog}` }));

    const stages = report.durations.filter((d) => d.metric === "stage");
    const slowest = stages.length ? stages.reduce((a, b) => (b.p90Seconds > a.p90Seconds ? b : a)) : null;
    const times = report.durations.filter((d) => d.metric === "first_response" || d.metric === "resolution");
    const waits = report.durations.filter((d) => d.metric === "approval_wait");
    const slaTotals = grouped
      ? report.groups.map((g) => slaSum(report.sla.filter((r) => r.group === g.value), g.label))
      : report.buckets.map((b) => slaSum(report.sla.filter((r) => r.bucket === b), b));
    const corrections = [...report.corrections].sort((a, b) => b.count - a.count);

    const durationColumns = (first) => withGroup([
      ...first,
      { title: "count", key: "count" },
      { title: "mean", key: "meanSeconds", cell: (r) => fmtDuration(r.meanSeconds), csv: (r) => r.meanSeconds.toFixed(1) },
      { title: "p50", key: "p50Seconds", cell: (r) => fmtDuration(r.p50Seconds), csv: (r) => r.p50Seconds.toFixed(1) },
      { title: "p90", key: "p90Seconds", cell: (r) => fmtDuration(r.p90Seconds), csv: (r) => r.p90Seconds.toFixed(1) },
    ]);

    replace(body,
      section("volume", "Volume and backlog", "Tickets created and closed; the backlog is what is open at the end of each bucket.",
        volumeChart.length ? barChart({ rows: volumeChart, series: [{ name: "created", className: "bar-a" }, { name: "closed", className: "bar-b" }], testid: "report-volume-chart" }) : null,
        withGroup([{ title: "bucket", key: "bucket" }, { title: "created", key: "created" }, { title: "closed", key: "closed" },
          { title: "reopened", key: "reopened" }, { title: "backlog", key: "backlog" }]),
        report.volume, file("volume")),
      section("stages", "Time between stages", "p50 and p90 over the period; the slowest step (highest p90) is highlighted.",
        stages.length ? barChart({
          rows: stages.map((d) => ({
            label: `${grouped ? `${groupName(d.group)} · ` : ""}${label(d.fromStage)} → ${label(d.toStage)}`,
            values: [d.p50Seconds, d.p90Seconds],
            highlight: d === slowest,
            title: `${d.count} moves; mean ${fmtDuration(d.meanSeconds)}`,
          })),
          series: [{ name: "p50", className: "bar-a" }, { name: "p90", className: "bar-b" }],
          format: fmtDuration, labelWidth: 300, testid: "report-stages-chart",
        }) : null,
        durationColumns([{ title: "from", key: "fromStage" }, { title: "to", key: "toStage" }]),
        stages, file("stages"), (r) => r === slowest),
      section("response", "First response and resolution", "Time from creation; a ticket counts in the bucket where it was answered or resolved.",
        times.length ? barChart({
          rows: times.map((d) => ({ label: `${grouped ? `${groupName(d.group)} · ` : ""}${label(d.metric)}`, values: [d.p50Seconds, d.p90Seconds], title: `${d.count} tickets; mean ${fmtDuration(d.meanSeconds)}` })),
          series: [{ name: "p50", className: "bar-a" }, { name: "p90", className: "bar-b" }], format: fmtDuration, labelWidth: 300,
        }) : null,
        durationColumns([{ title: "bucket", key: "bucket", cell: (r) => r.bucket || "period", csv: (r) => r.bucket || "period" }, { title: "measure", key: "metric" }]),
        [...times, ...report.trends], file("response")),
      section("sla", "SLA attainment", "Share of first responses and resolutions that met their due time; breaches as the scheduler marked them.",
        slaTotals.some((r) => r.judged) ? barChart({
          rows: slaTotals.map((r) => ({ label: r.name, values: [r.first ?? 0, r.resolution ?? 0], title: `${r.breaches} breaches, ${r.escalations} escalations` })),
          series: [{ name: "first response", className: "bar-a" }, { name: "resolution", className: "bar-b" }], format: pct,
        }) : null,
        withGroup([{ title: "bucket", key: "bucket" },
          { title: "first response met", key: "firstResponseMet" }, { title: "missed", key: "firstResponseMissed" },
          { title: "attainment", key: "firstResponseAttainment", cell: (r) => pct(r.firstResponseAttainment), csv: (r) => r.firstResponseAttainment ?? "" },
          { title: "resolution met", key: "resolutionMet" }, { title: "missed", key: "resolutionMissed" },
          { title: "attainment", key: "resolutionAttainment", cell: (r) => pct(r.resolutionAttainment), csv: (r) => r.resolutionAttainment ?? "" },
          { title: "breaches", key: "breaches" }, { title: "escalations", key: "escalations" }]),
        report.sla, file("sla")),
      section("actions", "AI autonomy and approvals", "Action requests by actor and outcome: executed without a human, approved, rejected, denied, waiting.",
        report.actions.length ? barChart({
          rows: summarizeActions(report.actions).map((r) => ({ label: `${r.actor} · ${label(r.status)}`, values: [r.count] })),
          series: [{ name: "requests", className: "bar-a" }],
        }) : null,
        withGroup([{ title: "actor", key: "actor" }, { title: "action", key: "type" }, { title: "rule effect", key: "effect" },
          { title: "outcome", key: "status" }, { title: "count", key: "count" }]),
        report.actions, file("actions"),
        null,
        waits.length ? h("div", {}, h("h3", {}, "Approval wait"), table(durationColumns([{ title: "decision", key: "decision" }]), waits, "report-waits-table")) : null),
      section("corrections", "Classifier corrections", "Where agents corrected the model's category: the model is wrong most where the bars are longest.",
        corrections.length ? barChart({
          rows: corrections.slice(0, 15).map((c) => ({ label: `${label(c.fromCategory)} → ${label(c.toCategory)}`, values: [c.count] })),
          series: [{ name: "corrections", className: "bar-bad" }], labelWidth: 330,
        }) : null,
        withGroup([{ title: "model said", key: "fromCategory" }, { title: "corrected to", key: "toCategory" }, { title: "count", key: "count" }]),
        corrections, file("corrections")),
    );
  }

  load();
  return () => {
    disposed = true;
  };
}

function sum(rows, key) {
  return rows.reduce((total, r) => total + r[key], 0);
}

function slaSum(rows, name) {
  const t = (key) => sum(rows, key);
  const ratio = (met, missed) => (met + missed ? met / (met + missed) : null);
  return {
    name,
    first: ratio(t("firstResponseMet"), t("firstResponseMissed")),
    resolution: ratio(t("resolutionMet"), t("resolutionMissed")),
    judged: t("firstResponseMet") + t("firstResponseMissed") + t("resolutionMet") + t("resolutionMissed"),
    breaches: t("breaches"),
    escalations: t("escalations"),
  };
}

function summarizeActions(actions) {
  const totals = new Map();
  for (const a of actions) {
    const key = `${a.actor}|${a.status}`;
    const row = totals.get(key) || { actor: a.actor, status: a.status, count: 0 };
    row.count += a.count;
    totals.set(key, row);
  }
  return [...totals.values()].sort((a, b) => a.actor.localeCompare(b.actor) || b.count - a.count);
}

function table(columns, rows, testid, highlight = null) {
  return h("table", { class: "table", testid },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.title)))),
    h("tbody", {}, rows.map((r) => h("tr", { class: highlight && highlight(r) ? "breached" : "" },
      columns.map((c) => h("td", {}, c.cell ? c.cell(r) : label(r[c.key])))))));
}

function section(name, title, note, chart, columns, rows, fileName, highlight = null, extra = null) {
  return h("section", { class: "card", testid: `report-${name}` },
    h("div", { class: "page-head" }, h("h2", {}, title),
      h("button", { type: "button", testid: `report-${name}-csv`, onclick: () => download(fileName, toCsv(columns, rows)) }, "Download CSV")),
    h("p", { class: "muted small" }, note),
    chart || h("p", { class: "muted" }, "Nothing in this period."),
    rows.length ? table(columns, rows, `report-${name}-table`, highlight) : null,
    extra);
}

/** Stages, actors and effects come as GraphQL enum names (IN_PROGRESS); charts, tables and CSV show the
 * rules' lower-case values. */
function plainValues(report) {
  return {
    ...report,
    durations: report.durations.map((d) => ({ ...d, fromStage: enumValue(d.fromStage), toStage: enumValue(d.toStage) })),
    actions: report.actions.map((a) => ({ ...a, actor: enumValue(a.actor), effect: enumValue(a.effect) })),
  };
}
