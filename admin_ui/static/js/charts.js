// Small hand-drawn SVG charts: horizontal bars with labels, sized to their data.

import { s } from "./dom.js";

/**
 * Horizontal grouped bars.
 * rows: [{label, values: [number...], title?, highlight?}]; series: [{name, className}]; format: value → text.
 */
export function barChart({ rows, series, format = String, width = 640, rowHeight = 28, labelWidth = 210, testid }) {
  const barArea = width - labelWidth - 70;
  const max = Math.max(1e-9, ...rows.flatMap((r) => r.values));
  const height = rows.length * rowHeight + 26;
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width: "100%",
    class: "chart",
    role: "img",
    "data-testid": testid,
  });
  const barHeight = (rowHeight - 8) / series.length;
  rows.forEach((row, i) => {
    const y = i * rowHeight + 4;
    const group = s("g", { class: row.highlight ? "row highlight" : "row" });
    if (row.title) group.append(s("title", {}, row.title));
    group.append(
      s("text", { x: labelWidth - 8, y: y + rowHeight / 2, class: "chart-label", "text-anchor": "end", "dominant-baseline": "middle" }, row.label),
    );
    row.values.forEach((value, j) => {
      const w = Math.max(1, (value / max) * barArea);
      const by = y + j * barHeight;
      group.append(s("rect", { x: labelWidth, y: by, width: w, height: barHeight - 1, rx: 2, class: series[j].className }));
      group.append(
        s("text", { x: labelWidth + w + 4, y: by + barHeight / 2, class: "chart-value", "dominant-baseline": "middle" }, format(value)),
      );
    });
    svg.append(group);
  });
  const legendY = rows.length * rowHeight + 16;
  let x = labelWidth;
  for (const item of series) {
    svg.append(s("rect", { x, y: legendY - 8, width: 10, height: 10, rx: 2, class: item.className }));
    svg.append(s("text", { x: x + 14, y: legendY, class: "chart-legend", "dominant-baseline": "middle" }, item.name));
    x += 22 + item.name.length * 7;
  }
  return svg;
}
