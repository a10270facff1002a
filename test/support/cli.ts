/**
 * Runs the fleet CLI as a separate process in a project copy, optionally killing it with SIGKILL when
 * a line of its output matches.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { isBuilt } from "../../src/pulumi/build";
import { findToolchain } from "../../src/pulumi/toolchain";

export interface FleetRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** whether the kill pattern was seen and the process killed */
  killed: boolean;
  pid: number;
}

export interface FleetRunOptions {
  env?: Record<string, string>;
  /** the script to run instead of the fleet CLI, relative to root (e.g. demo/swarm.ts) */
  entry?: string;
  /** SIGKILL the fleet process (only it: its pulumi child is left to fend for itself) when stderr matches */
  killWhen?: RegExp;
  /** with killWhen: SIGKILL the whole process group (fleet, pulumi, its plugins), as a crash or power cut would */
  killGroup?: boolean;
  /** with killWhen: after the output matched, kill only once this says so (polled every 100 ms) */
  killOnceTrue?: () => Promise<boolean>;
  timeoutMs?: number;
}

/** Process groups of every run, so a test can make sure nothing it started outlives it. */
export const startedGroups = new Set<number>();

/**
 * Marks every process this test file starts (fleet passes HARDENED_FLEET_* on to pulumi, and pulumi
 * to its plugins), so that the plugin checks below see only this file's processes, not those of a
 * suite running beside it (scripts/test.sh runs two lanes at once).
 */
const OWNER_VAR = "HARDENED_FLEET_TEST_OWNER";
const OWNER = `${OWNER_VAR}=${process.pid}`;

/** The toolchain this checkout found, handed to runs in a project copy (which has no toolchain/ of its own). */
export function toolchainEnv(): Record<string, string> {
  const tc = findToolchain();
  return { HARDENED_FLEET_PULUMI_BIN: tc.bin, ...(tc.home ? { PULUMI_HOME: tc.home } : {}), [OWNER_VAR]: String(process.pid) };
}

/**
 * How the CLI is started in `root`: its compiled JavaScript when dist/ is as new as the sources, as
 * scripts/fleet.sh runs it for operators (a copy has the checkout's: projectCopy.ts), else tsx on the
 * TypeScript, as `npm run fleet` does (a test that edited a source gets what it edited). Another
 * `entry` (a script of the demo layer) always runs under tsx.
 */
export function cliCommand(root: string, entry?: string): string[] {
  if (entry === undefined && isBuilt(root)) return [path.join(root, "dist", "src", "cli", "main.js")];
  return ["--import", "tsx", path.join(root, entry ?? path.join("src", "cli", "main.ts"))];
}

export function fleet(root: string, args: string[], opts: FleetRunOptions = {}): Promise<FleetRun> {
  const child = spawn(process.execPath, [...cliCommand(root, opts.entry), ...args], {
    cwd: root,
    env: { ...process.env, ...toolchainEnv(), FLEET_PROJECT_DIR: root, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: what it leaves behind can be found and cleaned up
  });
  startedGroups.add(child.pid!);
  let stdout = "";
  let stderr = "";
  let killed = false;
  let armed = false;
  child.stdout.on("data", (c: Buffer) => { stdout += c.toString(); });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
    if (opts.killWhen && !armed && opts.killWhen.test(stderr)) {
      armed = true;
      void (async () => {
        while (opts.killOnceTrue && !(await opts.killOnceTrue()) && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
        if (child.exitCode !== null) return;
        killed = true;
        if (opts.killGroup) process.kill(-child.pid!, "SIGKILL");
        else child.kill("SIGKILL");
      })();
    }
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 600_000);
  return new Promise((resolve) => {
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, killed, pid: child.pid! });
    });
  });
}

export interface LongRun {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** resolves with the first match of `pattern` in stdout (rejects if the process exits first or after timeoutMs) */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpExecArray>;
}

/**
 * Starts a long-running fleet command (such as `fleet serve`) in its own process group; `prefix` runs
 * it through another command (`ip netns exec <namespace>`: inside a network namespace of the test).
 */
export function startFleet(root: string, args: string[], env: Record<string, string> = {}, prefix: string[] = []): LongRun {
  const node = [process.execPath, ...cliCommand(root), ...args];
  const [command, ...rest] = [...prefix, ...node];
  const child = spawn(command!, rest, {
    cwd: root,
    env: { ...process.env, ...toolchainEnv(), FLEET_PROJECT_DIR: root, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  startedGroups.add(child.pid!);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => { stdout += c.toString(); });
  child.stderr!.on("data", (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })));
  const waitFor = async (pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> => {
    const deadline = Date.now() + timeoutMs;
    let gone = false;
    void exited.then(() => { gone = true; });
    for (;;) {
      const m = pattern.exec(stdout);
      if (m) return m;
      if (gone || Date.now() > deadline) throw new Error(`fleet ${args.join(" ")}: no ${pattern} in its output${gone ? " (it exited)" : ""}:\n${stderr.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, stdout: () => stdout, stderr: () => stderr, exited, waitFor };
}

/**
 * Pulumi plugin processes (providers, language host, dynamic providers) that have lost their parent:
 * what a killed `pulumi` leaves behind, since plugins run in process groups of their own. Only those
 * started by this test file (their environment holds its mark).
 */
export function orphanedPlugins(): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (ppid !== 1 || !/pulumi-resource-|pulumi-language-|dynamic-provider/.test(cmdline)) continue;
      if (fs.readFileSync(`/proc/${entry}/environ`, "utf8").split("\0").includes(OWNER)) out.push(Number(entry));
    } catch { /* gone */ }
  }
  return out;
}

/** Kills whatever is left of the process groups the runs started, and the plugins their kills orphaned. */
export function killLeftovers(before: number[] = []): void {
  for (const pgid of startedGroups) {
    try { process.kill(-pgid, "SIGKILL"); } catch { /* gone */ }
  }
  startedGroups.clear();
  for (const pid of orphanedPlugins()) {
    if (before.includes(pid)) continue;
    // the whole group: a plugin started through a shell wrapper has its node child there too
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const pgid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      process.kill(pgid > 1 ? -pgid : pid, "SIGKILL");
    } catch { /* gone */ }
  }
}

/** A failed run's output, for assertion messages. */
export const show = (r: FleetRun) => `exit ${r.code}${r.signal ? ` (${r.signal})` : ""}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.slice(-4000)}`;
