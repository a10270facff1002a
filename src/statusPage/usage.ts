/**
 * The status page's usage graphs: a customer's CPU (% of its plan) and memory (MiB, the highest of
 * each step) over the last hour, from the watcher's samples, in `steps` equal steps ending now. A step
 * no sample covers is left out. Pure: the figures are those of `fleet usage` (src/usage/usage.ts).
 */
import { summarizeUsage, type StatsSample } from "../usage/usage";
import type { UsageSeries } from "./pages";

export const GRAPH_SECONDS = 3600;

export function usageGraphs(samples: StatsSample[], plan: { memoryMb: number; cpus: number }, now: Date,
  opts: { steps?: number; maxHoldSeconds?: number } = {}): UsageSeries[] {
  const steps = opts.steps ?? 30;
  const stepMs = (GRAPH_SECONDS * 1000) / steps;
  const start = now.getTime() - GRAPH_SECONDS * 1000;
  const cpu: number[] = [];
  const memory: number[] = [];
  for (let i = 0; i < steps; i++) {
    const window = { from: new Date(start + i * stepMs).toISOString(), to: new Date(start + (i + 1) * stepMs).toISOString() };
    const u = summarizeUsage(samples, window, plan, { maxHoldSeconds: opts.maxHoldSeconds });
    if (u.coverageSeconds <= 0) continue;
    // CPU over the part of the step that samples cover (the plan's CPU in full: 100)
    cpu.push(plan.cpus > 0 ? (100 * u.cpuSeconds) / (plan.cpus * u.coverageSeconds) : 0);
    memory.push(u.memoryPeakBytes / (1024 * 1024));
  }
  return [{ what: "CPU of the plan, last hour", unit: "%", values: cpu }, { what: "memory, last hour", unit: "MiB", values: memory }];
}
