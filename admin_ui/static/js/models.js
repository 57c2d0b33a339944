// Classifier (admin only): the store's own models. Train one from the agents' corrections (in the background,
// progress shown), read its side-by-side comparison with the active model — figures per held-out slice,
// per-category F1, the held-out tickets whose answer changes, the safety gate's verdict — then promote it or
// roll the active one back.

import { gql, payloadError } from "./api.js";
import { fmtTime, h, replace } from "./dom.js";

const FIGURES = "macroF1 accuracy ece priorityMacroF1 priorityEce";
const MODEL_FIELDS = `id number status modelVersion baselineVersion progress error createdAt trainedAt promotedAt
  trainedOnSeedRows trainedOnCorrections changesTotal
  gate { passed reasons }
  slices { name rows active { ${FIGURES} } candidate { ${FIGURES} } perClass { label support activeF1 candidateF1 } }
  changes { ticketId expectedCategory activeCategory activeConfidence candidateCategory candidateConfidence }`;
const LOAD = `{ classifierInfo { version } classifierModels { ${MODEL_FIELDS} } }`;
const TRAIN = `mutation { trainClassifierModel { errors { code message } model { id } } }`;
const PROMOTE = `mutation($id: ID!) { promoteClassifierModel(id: $id) { errors { code message } model { id } } }`;
const ROLLBACK = `mutation { rollbackClassifierModel { errors { code message } model { id } } }`;
const SLICE_NAMES = { merchant: "This store's newest corrected tickets (held out)", seed: "Seed hold-out" };

export function mountModels(container, { onAuthError }) {
  const notice = h("div", { testid: "models-notice" });
  const list = h("div", { testid: "models-list" }, h("p", { class: "muted" }, "loading…"));
  const serving = h("p", { class: "small", testid: "models-serving" });
  const trainButton = h("button", { class: "primary", testid: "models-train" }, "Train a new model");
  const rollbackButton = h("button", { testid: "models-rollback", hidden: true }, "Roll back");
  container.append(
    h("div", { class: "toolbar" }, h("h2", {}, "Classifier"), h("span", { class: "spacer" }), rollbackButton, trainButton),
    h("p", { class: "small muted" },
      "A model of this store's own, trained on the shipped seed set plus the agents' corrections. It is compared with ",
      "the active model on the newest corrected tickets (never trained on) and on the seed hold-out, and goes live only ",
      "when promoted — and only if it is not worse beyond the safety gate's margins."),
    serving,
    notice,
    list,
  );
  let disposed = false;
  let timer = null;

  function fail(err) {
    if (err.unauthenticated) onAuthError(err);
    else replace(notice, h("p", { class: "error", role: "alert", testid: "models-error" }, err.message));
  }

  async function run(mutation, variables, name) {
    const data = await gql(mutation, variables);
    const problem = payloadError(data[name]);
    if (problem) throw problem;
    return data[name];
  }

  const act = (fn) => async () => {
    replace(notice);
    try {
      await fn();
      await load();
    } catch (err) {
      fail(err);
    }
  };

  trainButton.addEventListener("click", act(() => run(TRAIN, {}, "trainClassifierModel")));
  rollbackButton.addEventListener("click", act(() => run(ROLLBACK, {}, "rollbackClassifierModel")));

  async function load() {
    clearTimeout(timer);
    try {
      const data = await gql(LOAD);
      if (disposed) return;
      const models = data.classifierModels;
      const active = models.find((m) => m.status === "ACTIVE");
      replace(serving, "Classifying new tickets: ",
        h("strong", { class: "mono", testid: "models-active-version" }, active ? active.modelVersion : data.classifierInfo.version),
        active ? ` (model #${active.number}, promoted ${fmtTime(active.promotedAt)})` : " (the shipped model)");
      rollbackButton.hidden = !active;
      replace(list, ...(models.length
        ? models.map(renderModel)
        : [h("p", { class: "muted", testid: "models-none" }, "No models yet. Agents' corrections are what a model learns from.")]));
      if (models.some((m) => m.status === "QUEUED" || m.status === "TRAINING")) timer = setTimeout(load, 1500);
    } catch (err) {
      fail(err);
    }
  }

  function renderModel(m) {
    const status = h("span", { class: m.status === "FAILED" ? "badge warn" : "badge", testid: "model-status" },
      m.status.toLowerCase().replace("_", " "));
    const gate = m.gate
      ? h("p", { class: m.gate.passed ? "small" : "small error", testid: "model-gate" },
        m.gate.passed ? "Safety gate: passes." : `Safety gate: refuses — ${m.gate.reasons.join("; ")}`)
      : null;
    return h("section", { class: "card", dataset: { modelId: m.id, status: m.status }, testid: "model" },
      h("div", { class: "toolbar" },
        h("strong", {}, `Model #${m.number}`), " ", status, " ",
        m.modelVersion ? h("span", { class: "mono small" }, m.modelVersion) : null,
        h("span", { class: "spacer" }),
        m.status === "READY"
          ? h("button", { onclick: act(() => run(PROMOTE, { id: m.id }, "promoteClassifierModel")), testid: "model-promote" }, "Promote")
          : null),
      h("p", { class: "small muted", testid: "model-progress" },
        `${m.progress}${m.error ? ` — ${m.error}` : ""} · started ${fmtTime(m.createdAt)}`,
        m.trainedAt ? ` · trained ${fmtTime(m.trainedAt)} on ${m.trainedOnSeedRows} seed rows and ${m.trainedOnCorrections} corrected tickets` : "",
        m.baselineVersion ? ` · compared with ${m.baselineVersion}` : ""),
      gate,
      m.slices.length ? renderSlices(m.slices) : null,
      m.changesTotal ? renderChanges(m) : null);
  }

  const pct = (v) => (v === null || v === undefined ? "–" : v.toFixed(3));
  const delta = (a, c, higherIsBetter = true) => {
    if (a === null || c === null || a === undefined || c === undefined) return h("td", {}, "");
    const d = c - a;
    const good = higherIsBetter ? d >= 0 : d <= 0;
    return h("td", { class: good ? "small" : "small error" }, `${d >= 0 ? "+" : ""}${d.toFixed(3)}`);
  };

  function renderSlices(slices) {
    const figureRows = [];
    for (const s of slices) {
      for (const [label, key, higher] of [["category macro-F1", "macroF1", true], ["category accuracy", "accuracy", true],
        ["category ECE", "ece", false], ["priority macro-F1", "priorityMacroF1", true], ["priority ECE", "priorityEce", false]]) {
        figureRows.push(h("tr", { testid: "model-figure", dataset: { slice: s.name, figure: key } },
          h("td", {}, `${SLICE_NAMES[s.name] || s.name} (${s.rows})`), h("td", {}, label),
          h("td", {}, pct(s.active[key])), h("td", {}, pct(s.candidate[key])), delta(s.active[key], s.candidate[key], higher)));
      }
    }
    const merchant = slices.find((s) => s.name === "merchant") || slices[0];
    const perClass = merchant.perClass.map((c) => h("tr", { testid: "model-class" },
      h("td", {}, c.label), h("td", {}, String(c.support)), h("td", {}, pct(c.activeF1)), h("td", {}, pct(c.candidateF1)),
      delta(c.activeF1, c.candidateF1)));
    return h("div", {},
      h("table", { class: "table", testid: "model-figures" },
        h("thead", {}, h("tr", {}, ...["Held out", "Figure", "Active", "Candidate", "Change"].map((c) => h("th", {}, c)))),
        h("tbody", {}, figureRows)),
      h("details", {}, h("summary", { class: "small" }, `Per category: ${SLICE_NAMES[merchant.name] || merchant.name}`),
        h("table", { class: "table" },
          h("thead", {}, h("tr", {}, ...["Category", "Tickets", "Active F1", "Candidate F1", "Change"].map((c) => h("th", {}, c)))),
          h("tbody", {}, perClass))));
  }

  function renderChanges(m) {
    const rows = m.changes.map((c) => h("tr", { testid: "model-change" },
      h("td", {}, h("a", { href: `#/ticket/${encodeURIComponent(c.ticketId)}` }, c.ticketId)),
      h("td", {}, c.expectedCategory),
      h("td", {}, `${c.activeCategory} (${c.activeConfidence.toFixed(2)})`),
      h("td", {}, `${c.candidateCategory} (${c.candidateConfidence.toFixed(2)})`)));
    return h("details", { testid: "model-changes" },
      h("summary", { class: "small" }, `${m.changesTotal} held-out ticket(s) answered differently`),
      h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ...["Ticket", "Corrected to", "Active model", "Candidate"].map((c) => h("th", {}, c)))),
        h("tbody", {}, rows)));
  }

  load();
  return () => {
    disposed = true;
    clearTimeout(timer);
  };
}
