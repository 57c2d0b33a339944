// A small line diff (longest common subsequence over lines, after trimming the common head and tail),
// grouped into hunks with a few lines of context — enough for ruleset files of a few thousand lines.

const MAX_CELLS = 4_000_000; // beyond this the LCS table is too big for a browser tab: fall back to replace-all

/** Returns [{op: "ctx"|"add"|"del", text, a?, b?}] where a/b are 1-based line numbers in old/new. */
export function diffLines(oldText, newText) {
  const a = oldText.split("\n");
  const b = newText.split("\n");
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const out = [];
  for (let i = 0; i < start; i++) out.push({ op: "ctx", text: a[i], a: i + 1, b: i + 1 });
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  if (midA.length * midB.length > MAX_CELLS) {
    midA.forEach((text, i) => out.push({ op: "del", text, a: start + i + 1 }));
    midB.forEach((text, j) => out.push({ op: "add", text, b: start + j + 1 }));
  } else {
    // lcs[i][j] = LCS length of midA[i:] and midB[j:], in one flat typed array
    const n = midA.length;
    const m = midB.length;
    const lcs = new Uint32Array((n + 1) * (m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i * (m + 1) + j] =
          midA[i] === midB[j]
            ? lcs[(i + 1) * (m + 1) + j + 1] + 1
            : Math.max(lcs[(i + 1) * (m + 1) + j], lcs[i * (m + 1) + j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && midA[i] === midB[j]) {
        out.push({ op: "ctx", text: midA[i], a: start + i + 1, b: start + j + 1 });
        i++;
        j++;
      } else if (j < m && (i === n || lcs[i * (m + 1) + j + 1] >= lcs[(i + 1) * (m + 1) + j])) {
        out.push({ op: "add", text: midB[j], b: start + j + 1 });
        j++;
      } else {
        out.push({ op: "del", text: midA[i], a: start + i + 1 });
        i++;
      }
    }
  }
  for (let k = 0; k < a.length - endA; k++) {
    out.push({ op: "ctx", text: a[endA + k], a: endA + k + 1, b: endB + k + 1 });
  }
  return out;
}

/** Keep `context` unchanged lines around each change; longer unchanged runs become {op: "skip", count}. */
export function hunks(lines, context = 3) {
  const keep = new Array(lines.length).fill(false);
  lines.forEach((line, i) => {
    if (line.op === "ctx") return;
    for (let k = Math.max(0, i - context); k <= Math.min(lines.length - 1, i + context); k++) keep[k] = true;
  });
  const out = [];
  let skipped = 0;
  lines.forEach((line, i) => {
    if (keep[i]) {
      if (skipped) out.push({ op: "skip", count: skipped });
      skipped = 0;
      out.push(line);
    } else {
      skipped++;
    }
  });
  if (skipped) out.push({ op: "skip", count: skipped });
  return out;
}

export function diffStats(lines) {
  return {
    added: lines.filter((l) => l.op === "add").length,
    removed: lines.filter((l) => l.op === "del").length,
  };
}
