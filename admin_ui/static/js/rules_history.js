// Version history: every published version with its message, a diff against the previous version (or the
// draft), and one-click activation of any version (rollback).

import { h, replace } from "./dom.js";
import { diffLines, diffStats, hunks } from "./diff.js";
import { activateVersion, when } from "./rules_common.js";

export function mountHistory(container, { versions, active, draft, canPublish, reload, fail, setDraft }) {
  const diffBox = h("div", { testid: "version-diff" });
  const status = h("p", { class: "small", testid: "history-status" });
  if (!versions.length) {
    container.append(h("p", { class: "muted" }, "Nothing published yet: the built-in default ruleset is in force."));
  }

  function showDiff(title, oldText, newText) {
    const lines = diffLines(oldText, newText);
    const stats = diffStats(lines);
    replace(diffBox,
      h("h3", {}, `${title} · +${stats.added} −${stats.removed}`),
      stats.added || stats.removed
        ? h("div", { class: "diff" }, hunks(lines).map((l) => l.op === "skip"
            ? h("div", { class: "skip" }, `… ${l.count} unchanged line${l.count === 1 ? "" : "s"}`)
            : h("div", { class: l.op }, `${l.op === "add" ? "+" : l.op === "del" ? "−" : " "} ${l.text}`)))
        : h("p", { class: "muted small" }, "No differences."));
  }

  async function activate(version) {
    status.textContent = `activating version ${version}…`;
    try {
      await activateVersion(version);
      status.textContent = `Version ${version} is active.`;
      await reload();
    } catch (err) {
      status.textContent = `Could not activate version ${version}: ${err.message}`;
      fail(err);
    }
  }

  if (versions.length) {
    container.append(
      h("div", { class: "toolbar" },
        h("button", { type: "button", testid: "diff-draft", onclick: () => showDiff("Draft vs active", active.source, draft.source) }, "Diff draft vs active")),
      status,
      h("table", { class: "table", testid: "version-history" },
        h("thead", {}, h("tr", {}, ["Version", "Message", "Published", "", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, versions.map((v, i) => {
          const previous = versions[i + 1];
          return h("tr", { testid: `version-row-${v.version}`, dataset: { active: String(v.active) } },
            h("td", {}, `v${v.version}`, v.active ? h("span", { class: "badge good", testid: "active-badge" }, "active") : null),
            h("td", {}, v.message || h("span", { class: "muted" }, "(no message)")),
            h("td", { class: "small" }, when(v.createdAt)),
            h("td", {},
              h("button", { type: "button", class: "small", testid: `diff-version-${v.version}`,
                onclick: () => showDiff(previous ? `v${previous.version} → v${v.version}` : `v${v.version} (first version)`, previous ? previous.source : "", v.source) }, "Diff"),
              " ",
              h("button", { type: "button", class: "small", onclick: () => setDraft(v.source) }, "Load into editor")),
            h("td", {}, canPublish && !v.active
              ? h("button", { type: "button", testid: `activate-version-${v.version}`, onclick: () => activate(v.version) },
                  v.version < (active.version ?? 0) ? "Roll back to this" : "Activate")
              : null));
        }))),
      diffBox);
  }
  return () => {};
}
