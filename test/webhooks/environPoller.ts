/**
 * Watches every process's environment (/proc/<pid>/environ) every ~50 ms for canary values, while a
 * fleet command runs: pulumi, its language host, the program, the plugins and the dynamic providers
 * must never hold fleet's secrets. The fleet processes themselves (`roots`) are skipped: their
 * environ is what they were started with. So is the esbuild service that the tsx loader (the tests run
 * the CLI as `npm run fleet` does, through tsx) starts inside a fleet process before any fleet code
 * runs: part of the interpreter, not a child fleet starts (a built fleet, node dist/..., has none). Also records the descendants of the roots whose command line
 * names pulumi, so a test can prove the poller saw the processes it is about.
 */
import * as fs from "node:fs";

export interface Leak {
  pid: number;
  cmdline: string;
  canary: string;
}

export interface EnvironWatch {
  /** fleet processes to skip and whose descendants count as "seen" */
  addRoot(pid: number): void;
  stop(): Promise<{ leaks: Leak[]; pulumiProcesses: Set<string>; polls: number }>;
}

function readProc(pid: string, file: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, "latin1");
  } catch {
    return undefined; // gone, or not ours to read
  }
}

export function watchEnvirons(canaries: string[], intervalMs = 50): EnvironWatch {
  const roots = new Set<number>();
  const leaks: Leak[] = [];
  const pulumiProcesses = new Set<string>();
  let polls = 0;
  let stopped = false;

  // a process's environ is fixed once it has exec'd: each pid is read once, so a poll costs a readdir
  const checked = new Set<string>();
  const poll = () => {
    const stats = new Map<string, { ppid: number; cmdline: string } | undefined>();
    const info = (pid: string) => {
      if (!stats.has(pid)) {
        const stat = readProc(pid, "stat");
        stats.set(pid, stat === undefined ? undefined : {
          ppid: Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]),
          cmdline: (readProc(pid, "cmdline") ?? "").split("\0").join(" ").trim(),
        });
      }
      return stats.get(pid);
    };
    const underRoot = (pid: string) => {
      for (let p = info(pid)?.ppid, hops = 0; p !== undefined && p > 1 && hops < 64; p = info(String(p))?.ppid, hops++) if (roots.has(p)) return true;
      return false;
    };
    for (const pid of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(pid) || checked.has(pid) || roots.has(Number(pid))) continue;
      const proc = info(pid);
      if (!proc) continue;
      if (roots.has(proc.ppid)) {
        if (/\/esbuild --service=/.test(proc.cmdline)) continue;
        // forked from a fleet process and not yet exec'd: still the parent's image (and environ); next poll
        if (proc.cmdline === info(String(proc.ppid))?.cmdline) continue;
      }
      const environ = readProc(pid, "environ");
      if (environ === undefined) continue;
      checked.add(pid);
      const canary = canaries.find((c) => environ.includes(c));
      if (canary) leaks.push({ pid: Number(pid), cmdline: proc.cmdline, canary });
      if (underRoot(pid) && /pulumi/.test(proc.cmdline)) pulumiProcesses.add(`${pid} ${proc.cmdline.slice(0, 160)}`);
    }
    polls++;
  };

  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const loop = (async () => {
    while (!stopped) {
      poll();
      // unref'd: never what keeps a failed test's process alive; stop() ends the wait at once
      await new Promise<void>((r) => { wake = r; timer = setTimeout(r, intervalMs).unref(); });
    }
  })();

  return {
    addRoot: (pid) => roots.add(pid),
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      wake?.();
      await loop;
      return { leaks, pulumiProcesses, polls };
    },
  };
}
