// What the machine and the processes are doing: /proc readers, an RSS
// sampler, a CPU accountant per phase and a small fsync probe.
import { closeSync, fdatasyncSync, openSync, readdirSync, readFileSync, realpathSync, unlinkSync, writeSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execFileSync } from 'node:child_process';

let clkTck = 100;
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 }).trim()) || 100;
} catch {
  /* keep the usual 100 */
}

/** Clock ticks per second of the times in /proc/<pid>/stat. */
export const clockTicks = () => clkTck;

/** utime + stime of a process (all its threads), in seconds; null once it is gone. */
export function procCpuSeconds(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / clkTck;
  } catch {
    return null;
  }
}

/** VmRSS and VmHWM (peak RSS as kept by the kernel) in bytes; null once the process is gone. */
export function procMemory(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name) => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(s);
      return m ? Number(m[1]) * 1024 : 0;
    };
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

/** Whole-machine jiffies by kind; busy is everything but idle and iowait. */
function machineJiffies() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = v.map((x) => x || 0);
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { busy: total - idle - iowait, process: user + nice + system, irq: irq + softirq, steal, iowait, total };
}

/**
 * Samples a process's memory every `intervalMs`. The peak is the larger of
 * the highest VmRSS seen and the kernel's VmHWM, so spikes between two
 * samples are not missed.
 */
export function startRssSampler(pid, intervalMs = 100) {
  const st = { peakRss: 0, peakHwm: 0, samples: 0, phasePeak: 0 };
  const sample = () => {
    const m = procMemory(pid);
    if (!m) return;
    st.samples++;
    st.peakRss = Math.max(st.peakRss, m.rss);
    st.peakHwm = Math.max(st.peakHwm, m.hwm);
    st.phasePeak = Math.max(st.phasePeak, m.rss);
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    sample,
    /** Peak VmRSS seen since the last call (the kernel keeps only the all-time peak). */
    takePhasePeak() {
      sample();
      const p = st.phasePeak;
      st.phasePeak = 0;
      return p;
    },
    get peakBytes() {
      return Math.max(st.peakRss, st.peakHwm);
    },
    get stats() {
      return { ...st };
    },
    stop() {
      sample();
      clearInterval(timer);
    },
  };
}

/** [ns on CPU, ns waiting in the run queue] of one thread, from schedstat; null when unavailable. */
function schedstat(pid, tid = pid) {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    return [run, wait];
  } catch {
    return null;
  }
}

function threadState(pid, tid = pid) {
  try {
    const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return s[s.lastIndexOf(')') + 2];
  } catch {
    return null;
  }
}

/**
 * Where the main thread of `pid` spends its time: on a CPU and waiting for
 * one (schedstat, exact), and the rest split by sampling its state every
 * `everyMs`: D = blocked on disk I/O (e.g. fsync), S = sleeping (idle in
 * epoll or waiting on something else). Fractions of wall time.
 */
export function mainThreadMeter(pid, everyMs = 5) {
  const t0 = performance.now();
  const s0 = schedstat(pid);
  const counts = { R: 0, D: 0, S: 0, other: 0 };
  const timer = setInterval(() => {
    const st = threadState(pid);
    if (st === null) return;
    if (st === 'R' || st === 'D' || st === 'S') counts[st]++;
    else counts.other++;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const s1 = schedstat(pid);
      if (!s0 || !s1) return null;
      const wallNs = (performance.now() - t0) * 1e6;
      const onCpu = (s1[0] - s0[0]) / wallNs;
      const runQueue = (s1[1] - s0[1]) / wallNs;
      const n = counts.R + counts.D + counts.S + counts.other;
      const off = Math.max(0, 1 - onCpu - runQueue);
      const offSamples = counts.D + counts.S + counts.other;
      const share = (k) => (offSamples > 0 ? (counts[k] / offSamples) * off : 0);
      return {
        onCpu: round(onCpu, 3),
        waitingForCpu: round(runQueue, 3),
        diskWait: round(share('D'), 3),
        sleeping: round(share('S') + share('other'), 3),
        samples: n,
      };
    },
  };
}

/**
 * /proc/<pid>/stat of every process on the machine: pid (as in /proc), the
 * comm name, and the fields after it (f[1] ppid, f[11..14] utime, stime,
 * cutime, cstime in clock ticks). Processes that exit meanwhile are left out.
 */
export function procStats() {
  const out = [];
  let pids = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      out.push({ pid, name: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), f: s.slice(s.lastIndexOf(')') + 2).split(' ') });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** CPU seconds of every process on the machine: pid -> {cpu, name}. */
function allProcesses() {
  const out = new Map();
  for (const { pid, name, f } of procStats()) out.set(pid, { cpu: (Number(f[11]) + Number(f[12])) / clkTck, name });
  return out;
}

/** A short command line for a pid (falls back to the comm name). */
function cmdline(pid, name) {
  try {
    const c = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const interesting = c.find((a, i) => i > 0 && !a.startsWith('-')) ?? c[0];
    return `${name} ${interesting ? interesting.split('/').slice(-2).join('/') : ''}`.trim().slice(0, 60);
  } catch {
    return name;
  }
}

/**
 * CPU used between start() and stop(), for this process, the server
 * process(es) and the machine, in cores (1.0 = one core busy for the whole
 * interval), plus this process's event-loop utilisation. `children` is a pid,
 * null, or a list of {name, pid} (then `processes` gives each one's cores and
 * `serverCores` their sum). Processes whose name is in `notOthers` (e.g.
 * postgres, accounted separately) are left out of `topOthers`.
 */
export function cpuMeter(children, { notOthers = [] } = {}) {
  const list = children === null || children === undefined ? [] : Array.isArray(children) ? children : [{ name: 'server', pid: children }];
  const single = !Array.isArray(children);
  const t0 = performance.now();
  const self0 = process.cpuUsage();
  const child0 = list.map((c) => procCpuSeconds(c.pid));
  const m0 = machineJiffies();
  const elu0 = performance.eventLoopUtilization();
  const procs0 = allProcesses();
  const ours = new Set(list.map((c) => c.pid));
  return {
    stop() {
      const procs1 = allProcesses();
      const wall = (performance.now() - t0) / 1000;
      const self = process.cpuUsage(self0);
      const child1 = list.map((c) => procCpuSeconds(c.pid));
      const m1 = machineJiffies();
      const dt = m1.total - m0.total || 1;
      const ncpu = cpus().length;
      const each = list.map((c, i) => ({ name: c.name, pid: c.pid, cores: child0[i] !== null && child1[i] !== null ? round((child1[i] - child0[i]) / wall, 2) : null }));
      const known = each.filter((c) => c.cores !== null);
      const out = {
        wallSeconds: round(wall, 3),
        harnessCores: round((self.user + self.system) / 1e6 / wall, 2),
        harnessEventLoopUtilisation: round(performance.eventLoopUtilization(elu0).utilization, 2),
        serverCores: known.length === 0 ? null : round(list.reduce((a, _c, i) => a + (child0[i] !== null && child1[i] !== null ? child1[i] - child0[i] : 0), 0) / wall, 2),
        machineBusyCores: round(((m1.busy - m0.busy) / dt) * ncpu, 2),
        // user+system of all processes (comparable with the per-process figures above)
        machineProcessCores: round(((m1.process - m0.process) / dt) * ncpu, 2),
        // interrupts and softirqs: on loopback, much of the TCP work is here, charged to no process
        machineIrqCores: round(((m1.irq - m0.irq) / dt) * ncpu, 2),
        machineStealCores: round(((m1.steal - m0.steal) / dt) * ncpu, 2),
        machineIowaitCores: round(((m1.iowait - m0.iowait) / dt) * ncpu, 2),
        // the biggest consumers besides this process and the server process(es)
        topOthers: [...procs1]
          .filter(([pid, p]) => Number(pid) !== process.pid && !ours.has(Number(pid)) && !notOthers.includes(p.name))
          .map(([pid, p]) => ({ pid: Number(pid), cores: round((p.cpu - (procs0.get(pid)?.cpu ?? 0)) / wall, 2), what: p.name }))
          .filter((p) => p.cores >= 0.05)
          .sort((a, b) => b.cores - a.cores)
          .slice(0, 3)
          .map((p) => ({ ...p, what: cmdline(p.pid, p.what) })),
      };
      if (!single) out.processes = each;
      return out;
    },
  };
}

/** The filesystem type holding `path`, from the longest matching mount point. */
export function filesystemOf(path) {
  try {
    const real = realpathSync(path);
    let best = { mount: '', type: 'unknown', device: '' };
    for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const [device, mount, type] = line.split(' ');
      if (!mount) continue;
      const m = mount.replace(/\\040/g, ' ');
      if ((real === m || real.startsWith(m.endsWith('/') ? m : m + '/')) && m.length >= best.mount.length) best = { mount: m, type, device };
    }
    return best;
  } catch {
    return { mount: '', type: 'unknown', device: '' };
  }
}

/**
 * Appends 4 KiB and fdatasyncs, `n` times, in `dir`: roughly what one SQLite
 * WAL commit with synchronous=FULL costs on this disk.
 */
export function fsyncProbe(dir, n = 50) {
  const file = join(dir, 'fsync-probe');
  const buf = Buffer.alloc(4096, 7);
  const times = [];
  const fd = openSync(file, 'w');
  try {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      writeSync(fd, buf);
      fdatasyncSync(fd);
      times.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    unlinkSync(file);
  }
  times.sort((a, b) => a - b);
  return { n, p50Ms: round(pct(times, 50), 3), p99Ms: round(pct(times, 99), 3) };
}

export function machineInfo() {
  const c = cpus();
  return { cpus: c.length, cpuModel: c[0]?.model ?? 'unknown', memoryMB: Math.round(totalmem() / 2 ** 20), node: process.version, platform: `${process.platform}-${process.arch}` };
}

/** Nearest-rank percentile of a sorted array. */
export function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function round(x, digits = 0) {
  if (x === null || x === undefined || !Number.isFinite(x)) return x ?? null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
