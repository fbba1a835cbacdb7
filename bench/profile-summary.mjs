#!/usr/bin/env node
// Summarises a .cpuprofile written by `npm run bench -- --profile <dir>`:
// self time by package and by function, and inclusive time of Hooklane's own
// functions (dist/). Time inside a synchronous SQLite COMMIT, fsync included,
// shows up as self time of better-sqlite3's transaction wrapper.
//   node bench/profile-summary.mjs <file.cpuprofile> [rows]
import { readFileSync } from 'node:fs';

const [file, rowsArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/profile-summary.mjs <file.cpuprofile> [rows]\n');
  process.exit(2);
}
const rows = Number(rowsArg) || 20;
const p = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const timeOf = new Map();
let total = 0;
p.samples.forEach((id, i) => {
  const dt = p.timeDeltas[i] ?? 0;
  timeOf.set(id, (timeOf.get(id) ?? 0) + dt);
  total += dt;
});

const name = (n) => {
  const f = n.callFrame;
  const url = f.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/');
  return `${f.functionName || '(anonymous)'} ${url}${url ? ':' + (f.lineNumber + 1) : ''}`;
};
const pkg = (n) => {
  const u = n.callFrame.url;
  if (!u) return n.callFrame.functionName.startsWith('(') ? n.callFrame.functionName : '(native)';
  const m = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(u);
  if (m) return m[1];
  if (u.includes('/dist/')) return 'hooklane (dist/)';
  if (u.startsWith('node:')) return 'node:' + u.slice(5).split('/')[0];
  return u;
};

const add = (m, k, t) => m.set(k, (m.get(k) ?? 0) + t);
const selfPkg = new Map();
const selfFn = new Map();
const inclusive = new Map();
for (const [id, t] of timeOf) {
  const n = byId.get(id);
  add(selfPkg, pkg(n), t);
  add(selfFn, name(n), t);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = name(byId.get(cur));
    if (!seen.has(k)) {
      seen.add(k);
      add(inclusive, k, t);
    }
  }
}
const out = [];
const print = (title, m, filter = () => true) => {
  out.push(`\n${title}\n`);
  [...m]
    .filter(([k]) => filter(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, rows)
    .forEach(([k, t]) => out.push(`${((t / total) * 100).toFixed(1).padStart(6)}%  ${k}\n`));
};
out.push(`${file}: ${(total / 1000).toFixed(0)} ms sampled\n`);
print('self time by package', selfPkg);
print('self time by function', selfFn);
print('inclusive time, Hooklane functions', inclusive, (k) => k.includes(' dist/'));
process.stdout.on('error', () => process.exit(0)); // e.g. piped into head
process.stdout.write(out.join(''));
