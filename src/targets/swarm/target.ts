/**
 * target: swarm, on fleet's side: which node a new customer goes to, every node's engine (audit,
 * data), a customer's task health and gate, and moving a customer's data to another node.
 */
import type Dockerode from "dockerode";
import { auditFleet, failedChecks, type AuditFilter, type ContainerAudit } from "../../audit/audit";
import { overlayCheck, type NetworkInfo } from "../../audit/overlay";
import { ConfigError } from "../../config/errors";
import type { CustomerConfig, Sandbox, SwarmEnvironmentConfig } from "../../config/schema";
import { archiveVolume, restoreArchive, runOneShot } from "../../engine/oneShot";
import { pullImage } from "../../engine/pull";
import { customerNames, logCollectorNames } from "../../hardening/names";
import { DEFAULT_RUNTIME, defaultRuntimeMismatch, runtimeOf, sandboxRuntime } from "../../hardening/sandbox";
import { serviceIdentity } from "../../hardening/serviceSpec";
import type { Log } from "../../pulumi/progress";
import { auditTask, restartService, runningTask, scaleService } from "../../swarm/deploy";
import { NODE_LABEL, SANDBOX_NODE_LABEL, swarmNodeHosts } from "../../swarm/serviceSpec";
import { type ContainerStatus, type DeployTarget, type LogSource, type MoveResult, type NodeMove, type TargetEngine } from "../deployTarget";
import { engineAt } from "../../engine/client";

/**
 * The node a new customer goes to: among the nodes of its plan's sandbox (sandbox nodes for a
 * sandboxed plan, the others for the rest), the one with the fewest customers, the first listed on a
 * tie. Refuses when there is none of that kind. Pure.
 */
export function chooseNode(env: SwarmEnvironmentConfig, customers: CustomerConfig[], sandbox: Sandbox = "none"): string {
  const nodes = env.swarm.nodes.filter((n) => n.sandbox === sandbox).map((n) => n.name);
  if (nodes.length === 0) {
    throw new Error(sandbox === "none"
      ? `every node of environment '${env.name}' is a sandbox node (swarm.nodes[].sandbox), so a plan that is not sandboxed has nowhere to run: ` +
        "add a node without sandbox, or give the customer a sandboxed plan. Nothing was created"
      : `this plan runs its customers in a ${sandbox} sandbox, and environment '${env.name}' has no sandbox node: mark a node whose engine's ` +
        `default runtime is runsc with sandbox: ${sandbox} in swarm.nodes and the node label hardened-fleet.sandbox=${sandbox} (docs/sandbox.md). Nothing was created`);
  }
  const load = new Map(nodes.map((n) => [n, 0]));
  for (const c of customers) if (c.node !== undefined && load.has(c.node)) load.set(c.node, load.get(c.node)! + 1);
  return nodes.reduce((best, n) => (load.get(n)! < load.get(best)! ? n : best), nodes[0]!);
}

/** The image on that engine, pulled from the registry when missing (a drill boots it there; a move pulls it before the customer stops). */
export async function ensureImage(engine: Dockerode, image: string): Promise<void> {
  try {
    await engine.getImage(image).inspect();
    return;
  } catch { /* pull it */ }
  const password = process.env.HF_REGISTRY_PASSWORD;
  await pullImage(engine, image, password ? { username: process.env.HF_REGISTRY_USERNAME, password, serveraddress: image.split("/")[0]! } : undefined);
}

/** Every path of the volume with its owner, size and (for files) content hash: equal listings mean an exact copy. */
async function volumeListing(engine: Dockerode, volume: string): Promise<string> {
  const r = await runOneShot(engine, {
    volume, role: "move-check", readOnlyVolume: true, capAdd: ["DAC_READ_SEARCH"],
    cmd: ["sh", "-c", "cd /data && find . -print0 | sort -z | xargs -0 stat -c '%n %u:%g %a %s' && find . -type f -print0 | sort -z | xargs -0 -r sha256sum"],
  });
  if (r.exitCode !== 0) throw new Error(`listing volume ${volume} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Whether the volume exists on that engine with anything in it. */
async function volumeHasData(engine: Dockerode, volume: string): Promise<boolean> {
  try {
    await engine.getVolume(volume).inspect();
  } catch {
    return false;
  }
  const r = await runOneShot(engine, {
    volume, role: "move-check", readOnlyVolume: true, capAdd: ["DAC_READ_SEARCH"], cmd: ["sh", "-c", "find /data -mindepth 1 | head -n 1"],
  });
  return r.stdout.trim() !== "";
}

export class SwarmTarget implements DeployTarget {
  readonly kind = "swarm" as const;
  private client: Dockerode | undefined;

  /**
   * `managerHost`: the engine the environment deploys through (its docker:host, else DOCKER_HOST);
   * `connect`: a client of it.
   */
  constructor(readonly config: SwarmEnvironmentConfig, private readonly managerHost: string | undefined,
    private readonly connect: () => Dockerode) {}

  /** The environment's engine (a manager), connected on first use. */
  private get manager(): Dockerode {
    this.client ??= this.connect();
    return this.client;
  }

  /** The engine of one node. */
  nodeEngine(node: string): Dockerode {
    const found = this.config.swarm.nodes.find((n) => n.name === node);
    if (!found) throw new Error(`environment '${this.config.name}' has no node '${node}' in swarm.nodes`);
    return engineAt(found.host);
  }

  placement(current: CustomerConfig | undefined, customers: CustomerConfig[], dataHome?: string, sandbox: Sandbox = "none"): string {
    // a customer stays on its node until 'fleet move'; a new one goes to its data, else to the least loaded node of its kind
    return current?.node ?? dataHome ?? chooseNode(this.config, customers, sandbox);
  }

  /**
   * The node where a customer's data already is, looking at every node's engine: a customer provisioned
   * again after a deprovision goes back to its data instead of starting empty on another node. Refuses
   * when copies with data are on more than one node, or the node with the data is down in the swarm.
   * Undefined when no node has the volume.
   */
  async findDataHome(customer: string): Promise<string | undefined> {
    const env = this.config;
    const volume = customerNames(env.name, customer).dataVolume;
    const found = await this.volumeHolders(volume);
    if (found.length === 0) return undefined;
    const withData: string[] = [];
    for (const f of found) {
      if (await volumeHasData(f.engine, volume)) withData.push(f.node!);
    }
    const candidates = withData.length > 0 ? withData : found.map((f) => f.node!);
    if (candidates.length > 1) {
      throw new Error(`${customer} has data volumes ${volume} with data on ${candidates.length} nodes (${candidates.join(", ")}), so fleet cannot tell which is current: ` +
        `nothing was changed. Archive and remove the copies that are not current (docker volume rm ${volume} on their node's engine), ` +
        `then provision again: it goes to the node that keeps the data, and 'fleet move ${customer} --env ${env.name} --to <node>' takes it elsewhere`);
    }
    const node = candidates[0]!;
    const manager = engineAt(env.swarm.nodes[0]!.host);
    const nodes = (await manager.listNodes()) as { Spec?: { Labels?: Record<string, string>; Availability?: string }; Status?: { State?: string } }[];
    const listed = nodes.find((n) => n.Spec?.Labels?.[NODE_LABEL] === node);
    if (!listed || listed.Status?.State !== "ready" || listed.Spec?.Availability !== "active") {
      const state = listed ? `${listed.Status?.State ?? "?"}, ${listed.Spec?.Availability ?? "?"}` : "not in the swarm";
      throw new Error(`${customer}'s data volume ${volume} is on node ${node}, which the swarm lists as ${state}: nothing was changed. ` +
        `Bring ${node} back (ready and active) and provision again; once it runs there, 'fleet move ${customer} --env ${env.name} --to <node>' takes it elsewhere`);
    }
    return node;
  }

  /** The customer's node's engine; without a node (not provisioned), the environment's. */
  dataEngine(customer: CustomerConfig | undefined): Dockerode {
    return customer?.node ? this.nodeEngine(customer.node) : this.manager;
  }

  engines(): TargetEngine[] {
    return this.config.swarm.nodes.map((n) => ({ node: n.name, engine: engineAt(n.host) }));
  }

  /** The nodes whose engine has `volume`, asked one by one; a node that does not answer is an error naming it. */
  async volumeHolders(volume: string): Promise<TargetEngine[]> {
    const found: TargetEngine[] = [];
    for (const n of this.config.swarm.nodes) {
      const engine = engineAt(n.host);
      try {
        await engine.getVolume(volume).inspect();
        found.push({ node: n.name, engine });
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) continue;
        throw new Error(`node ${n.name} (${n.host}) did not answer, so fleet cannot tell whether it holds ${volume}: ${(err as Error).message.split("\n")[0]}. ` +
          `Nothing was changed: bring ${n.name} back, or remove it from swarm.nodes if it is gone for good`);
      }
    }
    return found;
  }

  prepareOneShot(engine: Dockerode, image: string): Promise<void> {
    return ensureImage(engine, image);
  }

  /** `healthy on node2` (a running task is a healthy one), or why not; the runtime as the task's node reports its container. */
  async status(serviceName: string): Promise<ContainerStatus> {
    const task = await runningTask(this.manager, serviceName).catch(() => undefined);
    if (!task) return { health: "no running task", runtime: "-" };
    const host = swarmNodeHosts(this.config)[task.node];
    const info = host ? await engineAt(host).getContainer(task.containerId).inspect().catch(() => undefined) : undefined;
    return { health: `healthy on ${task.node}`, runtime: info ? runtimeOf(info.HostConfig) : "-" };
  }

  /** The service's running task, audited on its node. */
  async gate(serviceName: string): Promise<string | undefined> {
    const task = await runningTask(this.manager, serviceName);
    if (!task) return `service ${serviceName} has no running task`;
    const a = await auditTask(task, swarmNodeHosts(this.config)).catch((e: Error) => e);
    return a instanceof Error ? a.message : failedChecks(a.checks).join("; ") || undefined;
  }

  /**
   * Every node's hardened-fleet containers (customer tasks and the edge proxy), each with the overlay
   * check too: every overlay it is on encrypted, or waived (swarm.unencryptedOverlays).
   */
  async audit(filter: AuditFilter): Promise<ContainerAudit[]> {
    const env = this.config;
    const audits: ContainerAudit[] = [];
    const manager = engineAt(env.swarm.nodes[0]!.host);
    // swarm-scoped networks as the manager has them: their options say whether they are encrypted
    const overlays = new Map(((await manager.listNetworks({ filters: { driver: ["overlay"] } })) as NetworkInfo[]).map((n) => [n.Name, n]));
    for (const node of env.swarm.nodes) {
      const engine = engineAt(node.host);
      // what runs: the stopped containers of replaced tasks stay on their node until Swarm prunes them
      const found = await auditFleet(engine, { ...filter, runningOnly: true }).catch((err: Error) => {
        throw new Error(`node ${node.name} (${node.host}) did not answer the audit: ${err.message}`);
      });
      for (const a of found) {
        const info = await engine.getContainer(a.container).inspect();
        const on = Object.keys(info.NetworkSettings?.Networks ?? {}).map((name) => overlays.get(name) ?? { Name: name });
        const overlay = overlayCheck(on, env.swarm.unencryptedOverlays);
        audits.push({ ...a, container: `${node.name}/${a.container}`, ok: a.ok && overlay.ok, checks: [...a.checks, overlay] });
      }
    }
    return audits;
  }

  logSource(customer: string, serviceName: string): LogSource {
    const { name, edge } = this.config;
    return {
      collectors: this.engines(), collector: logCollectorNames(name, edge.name).container, customer,
      fallback: { kind: "service", engine: this.manager, name: serviceName },
    };
  }

  async restartCustomer(serviceName: string): Promise<void> {
    await restartService(this.managerHost ?? "", serviceName, 180);
  }

  nodeEngineFor(node: string): Dockerode {
    this.checkMove(node, "--node");
    return this.nodeEngine(node);
  }

  /** The node's engine runs what it is given under the runtime its sandbox mark says (a service runs under its node's default). */
  async checkRuntime(plan: string, sandbox: Sandbox, node: string | undefined): Promise<void> {
    const marked = this.config.swarm.nodes.find((n) => n.name === node);
    if (!marked) return; // no node yet, or one the config check refuses by name
    let info: { DefaultRuntime?: string };
    try {
      info = (await engineAt(marked.host).info()) as { DefaultRuntime?: string };
    } catch (err) {
      throw new Error(`node ${marked.name} (${marked.host}) did not answer, so fleet cannot tell which runtime a customer of plan '${plan}' would run under there: ` +
        `${(err as Error).message.split("\n")[0]}. Nothing was created: bring ${marked.name} back, or move the customer to another node`);
    }
    const problem = defaultRuntimeMismatch(marked.sandbox, runtimeOf({ Runtime: info.DefaultRuntime }));
    if (problem) {
      const fix = sandboxRuntime(marked.sandbox) === undefined
        ? `give that engine the default runtime ${DEFAULT_RUNTIME}, or mark the node sandbox: gvisor in swarm.nodes (and its node label ${SANDBOX_NODE_LABEL}=gvisor)`
        : `make ${sandboxRuntime(marked.sandbox)} that engine's "default-runtime" in its daemon.json, or remove sandbox from the node in swarm.nodes`;
      throw new Error(`node ${marked.name} ${problem}, and plan '${plan}' is ${sandbox === "none" ? "not sandboxed" : `sandboxed (${sandbox})`}: ` +
        `${fix} (docs/sandbox.md#on-a-swarm). Nothing was created`);
    }
    if (sandbox === "none") return;
    // a sandboxed plan's service is placed by the node label too: without it, its task would wait forever
    const nodes = (await this.manager.listNodes()) as { Spec?: { Labels?: Record<string, string> }; Description?: { Hostname?: string } }[];
    const listed = nodes.find((n) => n.Spec?.Labels?.[NODE_LABEL] === marked.name);
    if (listed && listed.Spec?.Labels?.[SANDBOX_NODE_LABEL] !== sandbox) {
      throw new Error(`node ${marked.name} has no node label ${SANDBOX_NODE_LABEL}=${sandbox}, by which the services of plan '${plan}' are placed: ` +
        `run 'docker node update --label-add ${SANDBOX_NODE_LABEL}=${sandbox} ${listed.Description?.Hostname ?? marked.name}' on a manager (docs/sandbox.md#on-a-swarm). Nothing was created`);
    }
  }

  checkMove(to: string, flag = "--to"): void {
    const nodes = this.config.swarm.nodes.map((n) => n.name);
    if (!nodes.includes(to)) {
      throw new ConfigError(flag, [{ path: flag, found: JSON.stringify(to), message: `must be one of the nodes of '${this.config.name}' (swarm.nodes): ${nodes.join(", ")}` }]);
    }
  }

  /**
   * Stops the customer's service (scaled to 0, so nothing writes), archives its volume on its node,
   * restores it on the other node and checks that every path, owner, mode and file content is the
   * same there, then deploys the customer pinned to the new node. Nothing is deleted: the old node
   * keeps its copy, and the archive stays in the backups. When anything fails before the switch, the
   * service starts again where it was. When fleet itself dies meanwhile (killed, a power cut), the
   * service stays at 0 replicas on its old node, and the next deployment of the customer sees that
   * (the swarm service's diff compares the live service, components/swarmService.ts) and starts it again there.
   */
  async moveToNode(move: NodeMove, log: Log): Promise<MoveResult> {
    const { customer, to, image } = move;
    const from = customer.node!;
    const stack = `${customer.environment}-${customer.id}`;
    const names = customerNames(customer.environment, customer.id);
    const source = this.nodeEngine(from);
    const destination = this.nodeEngine(to);
    const manager = this.managerHost ?? "";
    await ensureImage(destination, image);
    if (await volumeHasData(destination, names.dataVolume)) {
      throw new Error(`node ${to} already has a volume ${names.dataVolume} with data in it (left by an earlier move?): nothing was changed. ` +
        `Check it and remove it on ${to} (docker volume rm ${names.dataVolume}), or move ${customer.id} to another node`);
    }

    log(`${stack}: stopping its service so nothing writes while the data moves`);
    await scaleService(manager, names.container, 0);
    let archive: string;
    let files: number;
    try {
      archive = await archiveVolume(source, names.dataVolume, move.backupDir);
      log(`${stack}: archived ${names.dataVolume} on ${from} to ${archive}`);
      await destination.createVolume({ Name: names.dataVolume, Labels: serviceIdentity(customer.environment, customer.id).identityLabels });
      await restoreArchive(destination, names.dataVolume, archive);
      const [before, after] = await Promise.all([volumeListing(source, names.dataVolume), volumeListing(destination, names.dataVolume)]);
      if (before !== after) throw new Error(`the copy of ${names.dataVolume} on ${to} differs from the original on ${from}`);
      files = after.split("\n").filter((l) => /^[0-9a-f]{64} /.test(l)).length;
      log(`${stack}: restored on ${to} and checked: ${files} files, the same paths, owners, modes and contents`);
    } catch (err) {
      await scaleService(manager, names.container, 1).catch(() => {});
      throw new Error(`moving ${customer.id} failed, so it runs on ${from} again, unchanged: ${(err as Error).message}`);
    }

    try {
      await move.deploy({ ...customer, node: to, plan: move.plan });
    } catch (err) {
      log(`${stack}: the deployment on ${to} failed; going back to ${from}`);
      move.restoreConfig();
      // the live service may have the new placement already: put it back where its data is, running
      await scaleService(manager, names.container, 1, 120, from).catch(() => {});
      throw new Error(`moving ${customer.id} to ${to} failed at the switch, so it runs on ${from} again (its data there untouched): ${(err as Error).message}`);
    }
    return { customer: customer.id, from, to, archive, files };
  }
}
