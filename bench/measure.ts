/**
 * Timing for the benchmarks: a command run as a separate process, its wall time and the CPU time of
 * it and every process it waited for (bash `times`: Pulumi, its plugins, the program, the docker CLI;
 * the Docker daemon's own work is not in it), and min/median/max over runs.
 */
import { spawn } from "node:child_process";

export interface Sample {
  wall: number;
  cpu: number;
}

export interface Timed extends Sample {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `0m1.250s` -> 1.25 */
function seconds(text: string): number {
  const m = /^(\d+)m([\d.]+)s$/.exec(text);
  return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
}

/** The CPU seconds of the children from bash `times` output (its second line: user, system). Pure. */
export function childCpu(timesOutput: string): number {
  const line = timesOutput.trim().split("\n").pop() ?? "";
  return line.split(/\s+/).map(seconds).reduce((a, b) => a + b, 0);
}

const MARK = "::bench-times::";

/** Runs argv through bash so that `times` can report the CPU time of everything it waited for. */
export function timed(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  const script = `"$@"; rc=$?; echo "${MARK}" >&2; times >&2; exit $rc`;
  const t0 = process.hrtime.bigint();
  const child = spawn("bash", ["-c", script, "bash", ...argv], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => { stdout += c; });
  child.stderr.setEncoding("utf8").on("data", (c: string) => { stderr += c; });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      const at = stderr.lastIndexOf(MARK);
      const cpu = at >= 0 ? childCpu(stderr.slice(at + MARK.length)) : NaN;
      resolve({ code, stdout, stderr: at >= 0 ? stderr.slice(0, at) : stderr, wall, cpu });
    });
  });
}

/** Runs argv and fails with its output when it does not exit 0. */
export async function mustRun(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  const r = await timed(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr.slice(-3000)}`);
  return r;
}

export interface Spread {
  min: number;
  median: number;
  max: number;
}

export function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { min: sorted[0]!, median, max: sorted[sorted.length - 1]! };
}

/** `1.2 / 1.3 / 1.9` (min / median / max, one decimal). */
export function formatSpread(values: number[], digits = 1): string {
  const s = spread(values);
  return [s.min, s.median, s.max].map((v) => v.toFixed(digits)).join(" / ");
}

/** The p-th percentile (0-100) of values, nearest rank. Pure. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
