/** `fleet audit`: finds hardened-fleet's containers through the Engine API and runs every check on each. */
import type Dockerode from "dockerode";
import { LABEL_CUSTOMER, LABEL_ENVIRONMENT, LABEL_MANAGED } from "../hardening/names";
import { formatTable } from "../table";
import { runChecks, type CheckResult } from "./checks";
import { isSandboxRuntime } from "../hardening/sandbox";
import { probe, probeTarget } from "./probe";
import { probeSandboxed } from "./sandboxProbe";

export interface ContainerAudit {
  container: string;
  environment: string;
  customer: string;
  image: string;
  /** the image as the container was created from it: a repository digest for a Swarm task, else its image ID (what fleet's store is keyed by) */
  imageRef: string;
  ok: boolean;
  checks: CheckResult[];
  /** known vulnerabilities of its image as fleet last scanned it (src/fleet/supplyChain.ts findingsColumn); set by the CLI */
  findings?: string;
}

export interface AuditFilter {
  environment?: string;
  customer?: string;
  /** running containers only: on a swarm node, the stopped containers of replaced tasks stay until Swarm prunes them */
  runningOnly?: boolean;
}

export async function auditContainer(engine: Dockerode, idOrName: string): Promise<ContainerAudit> {
  const container = engine.getContainer(idOrName);
  const info = await container.inspect();
  const image = await engine.getImage(info.Image).inspect();
  // from fleet's tools image, beside the container: nothing runs inside it; a sandbox hides its
  // processes from the host, so a sandboxed container is probed from inside (sandboxProbe.ts)
  const probes = !info.State.Running ? undefined
    : isSandboxRuntime(info.HostConfig.Runtime) ? await probeSandboxed(engine, info) : await probe(engine, probeTarget(info, image.Config.User));
  const checks = runChecks(info, image, probes);
  const labels = info.Config.Labels ?? {};
  return {
    container: info.Name.replace(/^\//, ""),
    environment: labels[LABEL_ENVIRONMENT] ?? "-",
    customer: labels[LABEL_CUSTOMER] ?? "-",
    image: info.Image,
    imageRef: /@sha256:[a-f0-9]{64}$/.test(info.Config.Image) ? info.Config.Image : info.Image,
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
    // the listing (its inspect 404, or the probe refused its PID namespace) is not audited
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
  const withFindings = audits.some((a) => a.findings !== undefined);
  const head = ["container", ...ids, "result", ...(withFindings ? ["image findings"] : [])];
  const rows = audits.map((a) => [a.container, ...a.checks.map((c) => (c.ok ? "ok" : "FAIL")), a.ok ? "PASS" : "FAIL",
    ...(withFindings ? [a.findings ?? "-"] : [])]);
  const failures = audits.flatMap((a) => failedChecks(a.checks).map((f) => `  ${a.container} ${f}`));
  return [formatTable(head, rows), ...(failures.length ? ["", "failures:", ...failures] : [])].join("\n");
}
