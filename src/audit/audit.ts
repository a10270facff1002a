/** `fleet audit`: finds hardened-fleet's containers through the Engine API and runs every check on each. */
import type Dockerode from "dockerode";
import { execIn } from "../engine/exec";
import { LABEL_CUSTOMER, LABEL_ENVIRONMENT, LABEL_MANAGED } from "../hardening/names";
import { formatTable } from "../table";
import { runChecks, type CheckResult, type Probes } from "./checks";

export interface ContainerAudit {
  container: string;
  environment: string;
  customer: string;
  image: string;
  ok: boolean;
  checks: CheckResult[];
}

export interface AuditFilter {
  environment?: string;
  customer?: string;
  /** running containers only: on a swarm node, the stopped containers of replaced tasks stay until Swarm prunes them */
  runningOnly?: boolean;
}

const PROC_SEPARATOR = "--hardened-fleet-probe--";
const COMPILERS = ["gcc", "cc", "c++", "g++", "clang", "make", "ld"];

/** Looks inside the running container, as its own user: nothing is started with more privileges. */
export async function probe(container: Dockerode.Container, dataPaths: string[], mainPid: number): Promise<Probes> {
  // the process's status and mounts, the node's SwapTotal and the image's setuid/setgid files (CIS 4.8;
  // -xdev: the root filesystem only, not volumes or tmpfs), in one exec: it runs on every deployment's gate
  const proc = (await execIn(container, ["sh", "-c",
    `cat /proc/${mainPid}/status; echo ${PROC_SEPARATOR}; cat /proc/${mainPid}/mounts; echo ${PROC_SEPARATOR}; grep '^SwapTotal:' /proc/meminfo; ` +
    `echo ${PROC_SEPARATOR}; find / -xdev -type f -perm /6000 -print 2>/dev/null | head -n 50; true`])).stdout;
  const [procStatus = "", mounts = "", meminfo = "", setuidFiles = ""] = proc.split(`${PROC_SEPARATOR}\n`);
  const paths = dataPaths.map((p) => `'${p.replace(/'/g, "")}'`).join(" ");
  const foreign = dataPaths.length === 0 ? "" : (await execIn(container, ["sh", "-c",
    `find ${paths} \\( ! -user 1000 -o ! -group 1000 \\) -print 2>&1 | head -n 20`])).stdout;
  const leftovers = (await execIn(container, ["sh", "-c",
    `for t in ${COMPILERS.join(" ")}; do command -v "$t"; done; ` +
    "find /var/lib/apt/lists /var/cache/apt/archives /root/.cache/pip /home/*/.cache/pip /var/cache/yum /var/cache/apk " +
    "-mindepth 1 -type f -print 2>/dev/null | grep -v '/lock$' | head -n 5; true"])).stdout;
  const swap = /^SwapTotal:\s+(\d+)/m.exec(meminfo);
  return { procStatus, foreignFiles: foreign, buildLeftovers: leftovers, mounts, swapTotalKb: swap ? Number(swap[1]) : undefined, setuidFiles };
}

export async function auditContainer(engine: Dockerode, idOrName: string): Promise<ContainerAudit> {
  const container = engine.getContainer(idOrName);
  const info = await container.inspect();
  const image = await engine.getImage(info.Image).inspect();
  const dataPaths = (info.Mounts ?? []).filter((m) => m.Type === "volume").map((m) => m.Destination);
  // the app is PID 1 in its own PID namespace; in the host's, it has the host PID the engine reports
  const mainPid = info.HostConfig.PidMode === "host" ? info.State.Pid : 1;
  const probes = info.State.Running ? await probe(container, dataPaths, mainPid) : undefined;
  const checks = runChecks(info, image, probes);
  const labels = info.Config.Labels ?? {};
  return {
    container: info.Name.replace(/^\//, ""),
    environment: labels[LABEL_ENVIRONMENT] ?? "-",
    customer: labels[LABEL_CUSTOMER] ?? "-",
    image: info.Image,
    ok: checks.every((c) => c.ok),
    checks,
  };
}

export async function auditFleet(engine: Dockerode, filter: AuditFilter = {}): Promise<ContainerAudit[]> {
  const labels = [`${LABEL_MANAGED}=true`];
  if (filter.environment) labels.push(`${LABEL_ENVIRONMENT}=${filter.environment}`);
  if (filter.customer) labels.push(`${LABEL_CUSTOMER}=${filter.customer}`);
  const found = await engine.listContainers({ all: !filter.runningOnly, filters: { label: labels } });
  const audits: ContainerAudit[] = [];
  for (const c of found.sort((a, b) => (a.Names[0] ?? "").localeCompare(b.Names[0] ?? ""))) {
    // a deployment removes the container it replaced, a teardown stops it: one gone or stopped since
    // the listing (its inspect 404, or an exec into it refused) is not audited
    const audit = await auditContainer(engine, c.Id).catch(async (err: { statusCode?: number }) => {
      if (err.statusCode === 404 || await goneSince(engine, c)) return undefined;
      throw err;
    });
    if (audit) audits.push(audit);
  }
  return audits;
}

/** Whether a listed container is gone, or stopped, since it was listed running. */
async function goneSince(engine: Dockerode, listed: Dockerode.ContainerInfo): Promise<boolean> {
  const now = await engine.getContainer(listed.Id).inspect().catch((err: { statusCode?: number }) => {
    if (err.statusCode === 404) return undefined;
    throw err;
  });
  return now === undefined || (listed.State === "running" && !now.State.Running);
}

/**
 * The checks an audit failed, one `<id>: <detail>` each: what a gate, a rollout or a table reports.
 * Pure; the container gate's provider loads it from the compiled module.
 */
export function failedChecks(checks: readonly CheckResult[]): string[] {
  return checks.filter((c) => !c.ok).map((c) => `${c.id}: ${c.detail}`);
}

/** A table for people: one row per container, one column per check. */
export function formatAuditTable(audits: ContainerAudit[]): string {
  if (audits.length === 0) return "no hardened-fleet containers matched";
  const ids = audits[0]!.checks.map((c) => c.id);
  const head = ["container", ...ids, "result"];
  const rows = audits.map((a) => [a.container, ...a.checks.map((c) => (c.ok ? "ok" : "FAIL")), a.ok ? "PASS" : "FAIL"]);
  const failures = audits.flatMap((a) => failedChecks(a.checks).map((f) => `  ${a.container} ${f}`));
  return [formatTable(head, rows), ...(failures.length ? ["", "failures:", ...failures] : [])].join("\n");
}
