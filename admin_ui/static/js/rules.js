// The rules screen: the YAML editor with live validation, and beside it simulation, the coverage grid,
// backtest, tests and the version history (diffs, rollback). Publishing is admin-only and blocked while the
// draft has problems or failing tests.

import { gql, payloadError } from "./api.js";
import { debounce, h, replace } from "./dom.js";
import { LineEditor } from "./editor.js";
import { PUBLISH, RULESET, TEST_RULESET, VALIDATE } from "./queries.js";
import { mountBacktest } from "./rules_backtest.js";
import { stagesOf } from "./rules_common.js";
import { mountCoverage } from "./rules_coverage.js";
import { mountHistory } from "./rules_history.js";
import { mountSimulation } from "./rules_simulate.js";

const VALIDATE_DELAY_MS = 350;

export function mountRules(container, { session, onAuthError }) {
  const canPublish = session.can("publish");
  const state = {
    active: null, // {version, source, message, createdAt, transitions}
    versions: [],
    validation: null, // {valid, problems, warnings, source}
    validating: false,
    tests: null, // {source, results, error} for the draft the tests last ran on
    publishing: false,
  };

  const editor = new LineEditor({ onInput: () => onDraftChanged() });
  const activeLabel = h("span", { class: "muted", testid: "active-version" }, "loading…");
  const validity = h("span", { testid: "validation-status" });
  const problemsEl = h("ul", { class: "problems", testid: "validation-problems" });
  const testsEl = h("div", { testid: "test-results" });
  const publishMessage = h("input", {
    type: "text",
    placeholder: "What changed and why (required)",
    testid: "publish-message",
    "aria-label": "Publish message",
    oninput: () => {
      unstick();
      updatePublish();
    },
  });
  const publishButton = h("button", { class: "primary", type: "button", testid: "publish-button", onclick: publish }, "Publish");
  const publishNote = h("span", { class: "small muted", testid: "publish-note" });
  const revertButton = h("button", { type: "button", testid: "revert-button", onclick: () => setDraft(state.active.source) }, "Revert to active");
  const runTestsButton = h("button", { type: "button", testid: "run-tests-button", onclick: runTests }, "Run tests");
  const errorEl = h("p", { class: "error", role: "alert", testid: "rules-error" });

  const draft = {
    get source() {
      return editor.value;
    },
    get stages() {
      return stagesOf(state.active);
    },
    get activeVersion() {
      return state.active ? state.active.version : null;
    },
  };

  // The panels on the right share the draft and the error handler.
  const panelCtx = { draft, fail, canPublish, reload: () => load(false), setDraft, session };
  const tabs = [
    ["simulate", "Simulate", mountSimulation],
    ["coverage", "Coverage", mountCoverage],
    ["backtest", "Backtest", mountBacktest],
    ["history", "History", mountHistory],
  ];
  const tabBar = h("div", { class: "tabs", role: "tablist" });
  const panel = h("div", {});
  let unmountPanel = null;
  let currentTab = null;

  function showTab(name) {
    if (unmountPanel) unmountPanel();
    currentTab = name;
    for (const button of tabBar.children) {
      button.classList.toggle("active", button.dataset.tab === name);
      button.setAttribute("aria-selected", String(button.dataset.tab === name));
    }
    replace(panel);
    const [, , mount] = tabs.find(([n]) => n === name);
    unmountPanel = mount(panel, { ...panelCtx, versions: state.versions, active: state.active });
  }
  for (const [name, title] of tabs) {
    tabBar.append(h("button", { type: "button", role: "tab", dataset: { tab: name }, testid: `tab-${name}`, onclick: () => showTab(name) }, title));
  }

  container.append(
    h("div", { class: "page-head" }, h("h1", {}, "Rules"), activeLabel),
    errorEl,
    h("div", { class: "rules-layout" },
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, h("h2", { style: { margin: 0, flex: 1 } }, "Draft"), runTestsButton, revertButton),
        editor.el,
        h("div", { class: "status-line" }, validity),
        problemsEl,
        testsEl,
        canPublish
          ? h("div", { class: "toolbar", style: { marginTop: "12px" } }, publishMessage, publishButton)
          : h("p", { class: "small muted" }, "Your key can try drafts here; publishing needs an admin key."),
        canPublish ? publishNote : null),
      h("section", { class: "card" }, tabBar, panel)),
  );

  function fail(err) {
    if (err && err.unauthenticated) onAuthError(err);
    else errorEl.textContent = err ? String(err.message || err) : "";
  }

  function setDraft(source) {
    editor.value = source;
    onDraftChanged();
  }

  // The outcome of the last publish stays on screen until the draft or the message changes.
  function unstick() {
    delete publishNote.dataset.sticky;
    publishNote.className = "small muted";
  }

  function onDraftChanged() {
    unstick();
    state.validating = true;
    state.tests = state.tests && state.tests.source === editor.value ? state.tests : null;
    renderTests();
    validity.textContent = "checking…";
    validity.className = "muted";
    updatePublish();
    validateSoon();
  }

  const validateSoon = debounce(validate, VALIDATE_DELAY_MS);

  async function validate() {
    const source = editor.value;
    try {
      const data = await gql(VALIDATE, { source });
      if (source !== editor.value) return; // the merchant typed on; a newer check is on its way
      const payload = data.validateRuleset;
      const problems = payload.problems || [];
      const warnings = payload.warnings || [];
      // An error without problems (too large, say) still makes the draft invalid.
      const extra = problems.length ? [] : (payload.errors || []).map((e) => ({ message: e.message }));
      state.validation = { valid: payload.valid && !extra.length, problems: [...problems, ...extra], warnings, source };
    } catch (err) {
      if (source !== editor.value) return;
      state.validation = { valid: false, problems: [{ message: err.message }], warnings: [], source };
      if (err.unauthenticated) onAuthError(err);
    }
    state.validating = false;
    renderValidation();
    updatePublish();
    // The ruleset's own tests gate publishing, so run them whenever the draft is valid.
    if (state.validation.valid && source === editor.value) runTests();
  }

  function renderValidation() {
    const { valid, problems, warnings } = state.validation;
    validity.className = valid ? "ok" : "error";
    validity.textContent = valid
      ? `✓ valid${warnings.length ? ` · ${warnings.length} lint warning${warnings.length === 1 ? "" : "s"}` : ""}`
      : `${problems.length} problem${problems.length === 1 ? "" : "s"}`;
    const item = (p, kind) =>
      h("li", {
          class: kind,
          dataset: { line: p.line || "" },
          testid: kind === "warning" ? "lint-warning" : "validation-problem",
          onclick: () => p.line && editor.goToLine(p.line),
        },
        h("span", { class: "where" }, p.line ? `line ${p.line}${p.col ? `:${p.col}` : ""}` : "—"),
        p.code ? h("span", { class: "code" }, p.code) : null,
        p.message,
        p.path ? h("span", { class: "muted" }, `  (${p.path})`) : null);
    replace(problemsEl, problems.map((p) => item(p, "problem")), warnings.map((w) => item(w, "warning")));
    editor.setMarks([
      ...problems.map((p) => ({ line: p.line, kind: "problem", title: p.message })),
      ...warnings.map((w) => ({ line: w.line, kind: "warning", title: w.message })),
    ]);
  }

  async function runTests() {
    const source = editor.value;
    runTestsButton.disabled = true;
    replace(testsEl, h("p", { class: "muted small" }, "running tests…"));
    try {
      const data = await gql(TEST_RULESET, { source });
      const payload = data.testRuleset;
      const error = payloadError(payload);
      // A draft with problems cannot run its tests; the problems list already says why.
      state.tests = { source, results: payload.results || [], error: error && !(payload.results || []).length ? error.message : null };
    } catch (err) {
      state.tests = { source, results: [], error: err.message };
      if (err.unauthenticated) onAuthError(err);
    } finally {
      runTestsButton.disabled = false;
    }
    if (source === editor.value) renderTests();
    updatePublish();
  }

  function renderTests() {
    const tests = state.tests;
    if (!tests) {
      replace(testsEl);
      return;
    }
    if (tests.error) {
      replace(testsEl, h("p", { class: "small error" }, `Tests could not run: ${tests.error}`));
      return;
    }
    const failed = tests.results.filter((t) => !t.passed);
    const passed = tests.results.filter((t) => t.passed);
    const row = (t) =>
      h("li", { class: t.passed ? "test-pass" : "", testid: t.passed ? "test-passed" : "test-failed" },
        h("span", { class: t.passed ? "pass" : "fail" }, t.passed ? "✓ " : "✗ "), t.name, t.passed ? "" : ` — ${t.message}`);
    replace(testsEl,
      h("p", { class: `small ${failed.length ? "error" : "ok"}`, testid: "tests-summary" },
        tests.results.length
          ? `${passed.length}/${tests.results.length} tests pass`
          : "This ruleset has no tests."),
      failed.length ? h("ul", { class: "problems" }, failed.map(row)) : null,
      passed.length
        ? h("details", {}, h("summary", { class: "small muted" }, `${passed.length} passing`), h("ul", { class: "problems" }, passed.map(row)))
        : null);
  }

  function blockedReason() {
    if (!state.active) return "loading…";
    if (state.validating || !state.validation) return "checking the draft…";
    if (!state.validation.valid) return "fix the problems first";
    const tests = state.tests && state.tests.source === editor.value ? state.tests : null;
    if (!tests) return "running the ruleset's tests…";
    if (tests.error) return "the ruleset's tests could not run";
    if (tests.results.some((t) => !t.passed)) return "tests are failing";
    if (state.active.version !== null && editor.value === state.active.source) return "the draft is the active version";
    if (!publishMessage.value.trim()) return "write a message";
    if (state.publishing) return "publishing…";
    return "";
  }

  function updatePublish() {
    if (!canPublish) return;
    const reason = blockedReason();
    publishButton.disabled = Boolean(reason);
    publishButton.title = reason;
    if (!state.publishing && !publishNote.dataset.sticky) publishNote.textContent = reason ? `Publish is blocked: ${reason}.` : "";
  }

  async function publish() {
    const source = editor.value;
    const message = publishMessage.value.trim();
    state.publishing = true;
    unstick();
    updatePublish();
    try {
      const data = await gql(PUBLISH, { source, message });
      const payload = data.publishRuleset;
      const error = payloadError(payload);
      if (error) {
        if ((payload.testFailures || []).length) {
          state.tests = { source, results: payload.testFailures.map((t) => ({ ...t, passed: false })) };
          renderTests();
        }
        if ((payload.problems || []).length) {
          state.validation = { valid: false, problems: payload.problems, warnings: [], source };
          renderValidation();
        }
        publishNote.textContent = `Not published: ${error.message}`;
        publishNote.className = "small error";
        publishNote.dataset.sticky = "1";
      } else {
        publishMessage.value = "";
        publishNote.textContent = `Published version ${payload.rulesetVersion.version}.`;
        publishNote.className = "small ok";
        publishNote.dataset.sticky = "1";
        await load(false);
      }
    } catch (err) {
      fail(err);
    } finally {
      state.publishing = false;
      updatePublish();
    }
  }

  async function load(replaceDraft = true) {
    try {
      const data = await gql(RULESET);
      state.active = data.ruleset;
      state.versions = data.rulesetVersions || [];
      activeLabel.textContent =
        state.active.version === null
          ? "Active: the built-in default (nothing published yet)"
          : `Active: version ${state.active.version}${state.active.message ? ` — ${state.active.message}` : ""}`;
      if (replaceDraft) setDraft(state.active.source);
      else updatePublish();
      showTab(currentTab || "simulate");
    } catch (err) {
      fail(err);
    }
  }

  load(true);

  return () => {
    validateSoon.cancel();
    if (unmountPanel) unmountPanel();
  };
}
