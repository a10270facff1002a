/**
 * What `fleet usage` reports per customer over a window: CPU time and memory from samples of the
 * engine's stats (the collector's), against the customer's plan, with the traffic through the edge
 * (accessLog.ts), the data volume's size and the Stripe customer it is bound to. Pure: the caller
 * reads the samples, the log, the bindings and the volume sizes, and prints one of the formats.
 *
 * Rules:
 *  - The window is from <= t < to. A sample belongs to the window its `at` falls in, so consecutive
 *    windows add up: every CPU interval is counted in exactly one of them.
 *  - CPU: per container (its id), the increase of the cumulative counter (`cpuNanos`, the engine's
 *    cpu_usage.total_usage) from each sample to the next, counted in the window of the later sample.
 *    A container's first sample in the window counts from its previous sample before the window; with
 *    none, from its own first value (nothing before it is known). A counter lower than the one before
 *    is a reset (the container restarted): it counts from 0. cpuSeconds is the sum over containers.
 *  - cpuShareOfPlan: cpuSeconds / (plan.cpus × the window's seconds); 1 is the plan's CPU used in full.
 *  - Memory: a step function. A sample holds from its `at` until the next sample of the same container;
 *    a container's last sample holds until the next later sample of any container of the customer (it
 *    is gone by the next round of samples), and the customer's last sample holds for no time. Where
 *    samples of several containers hold at once (a start-first replacement), the customer's memory is
 *    their sum. With `maxHoldSeconds`, no sample holds longer (a gap in the sampling stays uncovered).
 *  - coverageSeconds: the part of the window where some sample holds (a sample before the window holds
 *    into it). memoryAverageBytes is the time-weighted mean over that part (0 when nothing covers the
 *    window); memoryPeakBytes the highest sum at any instant of the window, a sample's own instant
 *    included. Shares are of the plan's memory limit (memoryMb MiB).
 *  - Samples with an unparsable time or a non-finite value are ignored; two samples of a container at
 *    the same time count as the later one in the input.
 * Samples taken in rounds should carry the round's time (one `at` for every container of a round),
 * so an overlap is summed over the whole interval between rounds.
 */
import type { Traffic } from "./accessLog";

export interface StatsSample {
  /** ISO time of the reading */
  at: string;
  /** the container's id */
  container: string;
  /** cumulative CPU time of the container (cpu_stats.cpu_usage.total_usage), nanoseconds */
  cpuNanos: number;
  /** memory in use (usage without inactive file pages, as the watcher measures it) */
  memoryBytes: number;
}

export interface UsageWindow {
  from: string;
  to: string;
}

export interface CustomerUsage {
  windowSeconds: number;
  coverageSeconds: number;
  /** samples inside the window */
  samples: number;
  cpuSeconds: number;
  cpuShareOfPlan: number;
  memoryLimitBytes: number;
  memoryPeakBytes: number;
  memoryAverageBytes: number;
  memoryPeakShareOfPlan: number;
  memoryAverageShareOfPlan: number;
}

const MIB = 1024 * 1024;

interface Point { t: number; cpu: number; mem: number }

/** Each container's samples in time order (ms), the unusable ones dropped, one per instant. */
function byContainer(samples: StatsSample[]): Point[][] {
  const map = new Map<string, Point[]>();
  samples.forEach((s) => {
    const t = Date.parse(s.at);
    if (!Number.isFinite(t) || !Number.isFinite(s.cpuNanos) || !Number.isFinite(s.memoryBytes)) return;
    let list = map.get(s.container);
    if (!list) map.set(s.container, list = []);
    list.push({ t, cpu: s.cpuNanos, mem: s.memoryBytes });
  });
  return [...map.values()].map((list) => {
    // stable sort: of two samples at one instant the later in the input stays
    list.sort((a, b) => a.t - b.t);
    return list.filter((p, i) => i + 1 >= list.length || list[i + 1]!.t !== p.t);
  });
}

/** The increase of one container's counter within [from, to), nanoseconds. */
function cpuIncrease(points: Point[], from: number, to: number): number {
  let total = 0;
  let prev: Point | undefined;
  for (const p of points) {
    if (p.t >= to) break;
    if (p.t >= from && prev) total += p.cpu >= prev.cpu ? p.cpu - prev.cpu : p.cpu;
    prev = p;
  }
  return total;
}

export function summarizeUsage(samples: StatsSample[], window: UsageWindow, plan: { memoryMb: number; cpus: number },
  opts: { maxHoldSeconds?: number } = {}): CustomerUsage {
  const from = Date.parse(window.from);
  const to = Date.parse(window.to);
  const windowMs = Number.isFinite(from) && Number.isFinite(to) ? Math.max(0, to - from) : 0;
  const memoryLimitBytes = plan.memoryMb * MIB;
  const containers = byContainer(samples);
  const maxHold = opts.maxHoldSeconds !== undefined ? opts.maxHoldSeconds * 1000 : Infinity;

  let cpuNanos = 0;
  let inWindow = 0;
  for (const points of containers) {
    cpuNanos += cpuIncrease(points, from, to);
    inWindow += points.filter((p) => p.t >= from && p.t < to).length;
  }

  // memory: each sample held over [start, end), cut to the window; the sweep adds them up per instant
  const times = [...new Set(containers.flat().map((p) => p.t))].sort((a, b) => a - b);
  const nextAfter = (t: number): number => {
    let lo = 0, hi = times.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (times[mid]! > t) hi = mid; else lo = mid + 1; }
    return lo < times.length ? times[lo]! : t;
  };
  const events: { t: number; delta: number }[] = [];
  const instants = new Map<number, number>();
  for (const points of containers) {
    points.forEach((p, i) => {
      const holdEnd = Math.min(i + 1 < points.length ? points[i + 1]!.t : nextAfter(p.t), p.t + maxHold);
      const start = Math.max(p.t, from);
      const end = Math.min(holdEnd, to);
      if (end > start) {
        events.push({ t: start, delta: p.mem }, { t: end, delta: -p.mem });
      } else if (p.t >= from && p.t < to) {
        // held for no time, but seen at its instant
        instants.set(p.t, (instants.get(p.t) ?? 0) + p.mem);
      }
    });
  }
  events.sort((a, b) => a.t - b.t);
  let level = 0, holding = 0, covered = 0, integral = 0, peak = 0;
  for (let i = 0; i < events.length;) {
    const t = events[i]!.t;
    for (; i < events.length && events[i]!.t === t; i++) {
      level += events[i]!.delta;
      holding += events[i]!.delta > 0 ? 1 : -1;
    }
    const at = level + (instants.get(t) ?? 0);
    if (holding > 0 || instants.has(t)) peak = Math.max(peak, at);
    instants.delete(t);
    const next = i < events.length ? events[i]!.t : t;
    if (holding > 0) {
      covered += next - t;
      integral += level * (next - t);
    }
  }
  for (const v of instants.values()) peak = Math.max(peak, v);

  const cpuSeconds = cpuNanos / 1e9;
  const memoryAverageBytes = covered > 0 ? integral / covered : 0;
  const share = (x: number, of: number) => (of > 0 ? x / of : 0);
  return {
    windowSeconds: windowMs / 1000,
    coverageSeconds: covered / 1000,
    samples: inWindow,
    cpuSeconds,
    cpuShareOfPlan: share(cpuSeconds, plan.cpus * (windowMs / 1000)),
    memoryLimitBytes,
    memoryPeakBytes: peak,
    memoryAverageBytes,
    memoryPeakShareOfPlan: share(peak, memoryLimitBytes),
    memoryAverageShareOfPlan: share(memoryAverageBytes, memoryLimitBytes),
  };
}

// --- rows and formats ----------------------------------------------------------------------------

export interface UsageRow extends CustomerUsage {
  environment: string;
  customer: string;
  plan: string;
  /** cus_... when the customer is bound to one, else "" */
  stripeCustomer: string;
  from: string;
  to: string;
  cpuLimitCores: number;
  /** the data volume's size, null when it was not measured */
  dataVolumeBytes: number | null;
  requests: number;
  bytesIn: number;
  bytesOut: number;
  status5xx: number;
}

export interface CustomerUsageInput {
  customer: string;
  /** the plan's name and its limits */
  plan: string;
  limits: { memoryMb: number; cpus: number };
  samples: StatsSample[];
  stripeCustomer?: string;
  dataVolumeBytes?: number;
}

/** One row per customer, by customer id; traffic from aggregateByHost (none: 0 requests). */
export function usageRows(environment: string, window: UsageWindow, customers: CustomerUsageInput[],
  traffic: ReadonlyMap<string, Traffic>, opts: { maxHoldSeconds?: number } = {}): UsageRow[] {
  return [...customers].sort((a, b) => (a.customer < b.customer ? -1 : a.customer > b.customer ? 1 : 0)).map((c) => {
    const t = traffic.get(c.customer);
    return {
      environment, customer: c.customer, plan: c.plan, stripeCustomer: c.stripeCustomer ?? "",
      from: window.from, to: window.to, cpuLimitCores: c.limits.cpus,
      ...summarizeUsage(c.samples, window, c.limits, opts),
      dataVolumeBytes: c.dataVolumeBytes ?? null,
      requests: t?.requests ?? 0, bytesIn: t?.bytesIn ?? 0, bytesOut: t?.bytesOut ?? 0, status5xx: t?.status5xx ?? 0,
    };
  });
}

/** The columns of both formats, in order, with the decimals of each number (strings: undefined). */
const COLUMNS: [keyof UsageRow, number | undefined][] = [
  ["environment", undefined], ["customer", undefined], ["plan", undefined], ["stripeCustomer", undefined],
  ["from", undefined], ["to", undefined], ["windowSeconds", 3], ["coverageSeconds", 3], ["samples", 0],
  ["cpuSeconds", 3], ["cpuLimitCores", 3], ["cpuShareOfPlan", 4],
  ["memoryLimitBytes", 0], ["memoryPeakBytes", 0], ["memoryAverageBytes", 0], ["memoryPeakShareOfPlan", 4], ["memoryAverageShareOfPlan", 4],
  ["dataVolumeBytes", 0], ["requests", 0], ["bytesIn", 0], ["bytesOut", 0], ["status5xx", 0],
];

const fixed = (v: number, decimals: number): string => {
  const s = v.toFixed(decimals);
  return /^-0(?:\.0*)?$/.test(s) ? s.slice(1) : s;
};

/** RFC 4180: a field with a comma, a double quote, CR or LF is quoted, its quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** CSV with a header line, CRLF line ends; numbers plain (no exponent, no grouping); a missing volume size is empty. */
export function formatUsageCsv(rows: UsageRow[]): string {
  const lines = [COLUMNS.map(([name]) => name).join(",")];
  for (const r of rows) {
    lines.push(COLUMNS.map(([name, decimals]) => {
      const v = r[name];
      if (v === null || v === undefined) return "";
      return decimals === undefined || typeof v !== "number" ? csvField(String(v)) : fixed(v, decimals);
    }).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}

/** The JSON shape: the rows with the same fields, rounded as in the CSV (numbers stay numbers). */
export function usageJson(rows: UsageRow[]): Record<string, string | number | null>[] {
  return rows.map((r) => Object.fromEntries(COLUMNS.map(([name, decimals]) => {
    const v = r[name];
    return [name, typeof v === "number" && decimals !== undefined ? Number(fixed(v, decimals)) : v];
  })));
}

export function formatUsageJson(rows: UsageRow[]): string {
  return JSON.stringify(usageJson(rows), null, 2);
}
