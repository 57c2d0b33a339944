// The YAML editor: a textarea with a line-number gutter that scrolls with it and marks the lines that have
// problems (red) or lint warnings (amber). Tab inserts two spaces, as YAML wants.

import { h } from "./dom.js";

export class LineEditor {
  constructor({ value = "", readOnly = false, onInput = () => {} }) {
    this.gutter = h("div", { class: "gutter", "aria-hidden": "true", testid: "editor-gutter" });
    this.textarea = h("textarea", {
      spellcheck: false,
      wrap: "off",
      autocapitalize: "off",
      autocomplete: "off",
      "aria-label": "Ruleset YAML",
      testid: "ruleset-editor",
    });
    this.textarea.value = value;
    this.textarea.readOnly = readOnly;
    this.el = h("div", { class: "editor" }, this.gutter, this.textarea);
    this.marks = new Map(); // line → "problem" | "warning"
    this.lineCount = 0;
    this.textarea.addEventListener("input", () => {
      this._renderGutter();
      onInput(this.value);
    });
    this.textarea.addEventListener("scroll", () => {
      this.gutter.scrollTop = this.textarea.scrollTop;
    });
    this.textarea.addEventListener("keydown", (event) => {
      if (event.key === "Tab" && !event.shiftKey && !this.textarea.readOnly) {
        event.preventDefault();
        document.execCommand("insertText", false, "  ");
      }
    });
    this._renderGutter(true);
  }

  get value() {
    return this.textarea.value;
  }

  set value(text) {
    this.textarea.value = text;
    this._renderGutter();
  }

  set readOnly(flag) {
    this.textarea.readOnly = flag;
  }

  /** marks: [{line, kind: "problem"|"warning", title}] — problems win over warnings on the same line. */
  setMarks(marks) {
    this.marks = new Map();
    this.titles = new Map();
    for (const { line, kind, title } of marks) {
      if (!line) continue;
      if (this.marks.get(line) !== "problem") this.marks.set(line, kind);
      this.titles.set(line, [this.titles.get(line), title].filter(Boolean).join("\n"));
    }
    this._renderGutter(true);
  }

  /** Put the caret at the start of `line` and scroll it into view. */
  goToLine(line) {
    const lines = this.value.split("\n");
    const offset = lines.slice(0, Math.max(0, line - 1)).reduce((n, l) => n + l.length + 1, 0);
    this.textarea.focus();
    this.textarea.setSelectionRange(offset, offset + (lines[line - 1] || "").length);
    const lineHeight = 18;
    this.textarea.scrollTop = Math.max(0, (line - 5) * lineHeight);
  }

  _renderGutter(force = false) {
    const count = this.value.split("\n").length;
    if (!force && count === this.lineCount) return;
    this.lineCount = count;
    const rows = [];
    for (let i = 1; i <= count; i++) {
      const kind = this.marks.get(i);
      rows.push(h("div", { class: kind || null, title: kind ? this.titles.get(i) : null, dataset: { line: i } }, String(i)));
    }
    // A spacer so the gutter can scroll as far as the textarea when its horizontal scrollbar shows.
    rows.push(h("div", {}, ""));
    this.gutter.replaceChildren(...rows);
    this.gutter.scrollTop = this.textarea.scrollTop;
  }
}
