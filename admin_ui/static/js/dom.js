// Tiny DOM and formatting helpers shared by the screens (no framework: elements are built directly).

/** h("div", {class: "x", onclick: fn, dataset: {testid: "y"}}, child, "text", [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "testid") el.setAttribute("data-testid", value);
    else if (value === true) el.setAttribute(name, "");
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** SVG element with attributes. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** "4m", "3h 12m", "2d 5h" — compact and readable in a table cell. */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

export function ageSeconds(iso, now = Date.now()) {
  if (!iso) return null;
  return (now - parseTime(iso)) / 1000;
}

/** Timestamps without a zone are UTC (the server stores UTC). */
export function parseTime(iso) {
  if (!iso) return NaN;
  const hasZone = /[zZ]|[+-]\d\d:?\d\d$/.test(iso);
  return Date.parse(hasZone ? iso : `${iso}Z`);
}

export function fmtTime(iso) {
  if (!iso) return "–";
  const t = parseTime(iso);
  if (Number.isNaN(t)) return iso;
  return new Date(t).toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

export function label(value) {
  return value === null || value === undefined ? "–" : String(value).replaceAll("_", " ");
}

/** Enum values come back as NAMES over GraphQL (IN_PROGRESS); the rules use lower-case values. */
// An action request's type: the built-in one (the ActionType enum) or the one its ruleset declared
// (customType, e.g. create_return_label).
export function actionType(a) {
  return a.type ? enumValue(a.type) : a.customType || "?";
}

export function enumValue(value) {
  return value === null || value === undefined ? value : String(value).toLowerCase();
}

export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}
