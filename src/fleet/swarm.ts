/**
 * target: swarm, on fleet's side: which node a new customer goes to, every node's engine (audit,
 * data), a customer's task health, and `fleet move` (a customer's data to another node).
 */
import Dockerode from "dockerode";
import { auditFleet, type AuditFilter, type ContainerAudit } from "../audit/audit";
import { overlayCheck, type NetworkInfo } from "../audit/overlay";
import { ConfigError } from "../config/errors";
import type { CustomerConfig, EnvironmentConfig } from "../config/schema";
import { readEnvironmentConfig } from "../config/stackFiles";
import { parseCustomerTarget } from "../config/targets";
import { configuredDockerHost, dockerHost, dockerodeOptions, engineFor } from "../engine/connection";
import { archiveVolume, restoreArchive, runOneShot } from "../engine/oneShot";
import { pullImage } from "../engine/pull";
import { customerNames } from "../hardening/names";
import { serviceIdentity } from "../hardening/serviceSpec";
import { auditTask, runningTask, scaleService } from "../swarm/deploy";
import { NODE_LABEL, swarmNodeHosts } from "../swarm/serviceSpec";
import { stderrLog, type Log } from "./progress";
import { runUp, stackImage, withStack } from "./stacks";
import { readCustomerConfig, writeCustomerStackFile } from "./stackFiles";
import { backupDir } from "./volumes";
import type { FleetContext } from "./workspace";

/** The node a new customer goes to: the one with the fewest customers, the first listed on a tie. Pure. */
export function chooseNode(env: EnvironmentConfig, customers: CustomerConfig[]): string {
  const nodes = (env.swarm?.nodes ?? []).map((n) => n.name);
  if (nodes.length === 0) throw new Error(`environment '${env.name}' has no swarm.nodes`);
  const load = new Map(nodes.map((n) => [n, 0]));
  for (const c of customers) if (c.node !== undefined && load.has(c.node)) load.set(c.node, load.get(c.node)! + 1);
  return nodes.reduce((best, n) => (load.get(n)! < load.get(best)! ? n : best), nodes[0]!);
}

/** The nodes of the environment whose engine has `volume`, asked one by one; a node that does not answer is an error naming it. */
export async function nodesWithVolume(env: EnvironmentConfig, volume: string): Promise<{ node: string; engine: Dockerode }[]> {
  const found: { node: string; engine: Dockerode }[] = [];
  for (const n of env.swarm?.nodes ?? []) {
    const engine = new Dockerode(dockerodeOptions(n.host));
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

/**
 * The node where a customer's data already is, looking at every node's engine: a customer provisioned
 * again after a deprovision goes back to its data instead of starting empty on another node. Refuses
 * when copies with data are on more than one node, or the node with the data is down in the swarm.
 * Undefined when no node has the volume.
 */
export async function dataNode(env: EnvironmentConfig, customer: string, image: string): Promise<string | undefined> {
  const volume = customerNames(env.name, customer).dataVolume;
  const found = await nodesWithVolume(env, volume);
  if (found.length === 0) return undefined;
  const withData: string[] = [];
  for (const f of found) {
    await ensureImage(f.engine, image);
    if (await volumeHasData(f.engine, image, volume)) withData.push(f.node);
  }
  const candidates = withData.length > 0 ? withData : found.map((f) => f.node);
  if (candidates.length > 1) {
    throw new Error(`${customer} has data volumes ${volume} with data on ${candidates.length} nodes (${candidates.join(", ")}), so fleet cannot tell which is current: ` +
      `nothing was changed. Archive and remove the copies that are not current (docker volume rm ${volume} on their node's engine), ` +
      `then provision again: it goes to the node that keeps the data, and 'fleet move ${customer} --env ${env.name} --to <node>' takes it elsewhere`);
  }
  const node = candidates[0]!;
  const manager = new Dockerode(dockerodeOptions(env.swarm!.nodes[0]!.host));
  const nodes = (await manager.listNodes()) as { Spec?: { Labels?: Record<string, string>; Availability?: string }; Status?: { State?: string } }[];
  const listed = nodes.find((n) => n.Spec?.Labels?.[NODE_LABEL] === node);
  if (!listed || listed.Status?.State !== "ready" || listed.Spec?.Availability !== "active") {
    const state = listed ? `${listed.Status?.State ?? "?"}, ${listed.Spec?.Availability ?? "?"}` : "not in the swarm";
    throw new Error(`${customer}'s data volume ${volume} is on node ${node}, which the swarm lists as ${state}: nothing was changed. ` +
      `Bring ${node} back (ready and active) and provision again; once it runs there, 'fleet move ${customer} --env ${env.name} --to <node>' takes it elsewhere`);
  }
  return node;
}

/** The engine of one node of a swarm environment. */
export function nodeEngine(env: EnvironmentConfig, node: string): Dockerode {
  const found = env.swarm?.nodes.find((n) => n.name === node);
  if (!found) throw new Error(`environment '${env.name}' has no node '${node}' in swarm.nodes`);
  return new Dockerode(dockerodeOptions(found.host));
}

/** Where a customer's data volume lives: its node's engine on a swarm, else the environment's engine. */
export function dataEngine(projectDir: string, env: EnvironmentConfig, customer: CustomerConfig | undefined): Dockerode {
  if (env.target === "swarm" && customer?.node) return nodeEngine(env, customer.node);
  return engineFor(projectDir, env.name);
}

/**
 * The audit of every node's hardened-fleet containers (customer tasks and the edge proxy), each with
 * the overlay check too: every overlay it is on encrypted, or waived (swarm.unencryptedOverlays).
 */
export async function auditSwarm(env: EnvironmentConfig, filter: AuditFilter): Promise<ContainerAudit[]> {
  const audits: ContainerAudit[] = [];
  const manager = new Dockerode(dockerodeOptions(env.swarm!.nodes[0]!.host));
  // swarm-scoped networks as the manager has them: their options say whether they are encrypted
  const overlays = new Map(((await manager.listNetworks({ filters: { driver: ["overlay"] } })) as NetworkInfo[]).map((n) => [n.Name, n]));
  for (const node of env.swarm?.nodes ?? []) {
    const engine = new Dockerode(dockerodeOptions(node.host));
    // what runs: the stopped containers of replaced tasks stay on their node until Swarm prunes them
    const found = await auditFleet(engine, { ...filter, runningOnly: true }).catch((err: Error) => {
      throw new Error(`node ${node.name} (${node.host}) did not answer the audit: ${err.message}`);
    });
    for (const a of found) {
      const info = await engine.getContainer(a.container).inspect();
      const on = Object.keys(info.NetworkSettings?.Networks ?? {}).map((name) => overlays.get(name) ?? { Name: name });
      const overlay = overlayCheck(on, env.swarm?.unencryptedOverlays);
      audits.push({ ...a, container: `${node.name}/${a.container}`, ok: a.ok && overlay.ok, checks: [...a.checks, overlay] });
    }
  }
  return audits;
}

/** `healthy on node2`, or why not: a swarm customer's health for `fleet list`. */
export async function serviceHealth(projectDir: string, env: EnvironmentConfig, serviceName: string): Promise<string> {
  const task = await runningTask(engineFor(projectDir, env.name), serviceName).catch(() => undefined);
  return task ? `healthy on ${task.node}` : "no running task";
}

/** The rollout gate on a swarm: the service's running task, audited on its node; the failure reason, if any. */
export async function gateService(projectDir: string, env: EnvironmentConfig, serviceName: string): Promise<string | undefined> {
  const task = await runningTask(engineFor(projectDir, env.name), serviceName);
  if (!task) return `service ${serviceName} has no running task`;
  const a = await auditTask(task, swarmNodeHosts(env)).catch((e: Error) => e);
  if (a instanceof Error) return a.message;
  const failed = a.checks.filter((c) => !c.ok);
  return failed.length ? failed.map((c) => `${c.id}: ${c.detail}`).join("; ") : undefined;
}

/** The image on that engine, pulled from the registry when missing (a one-shot container needs it there). */
export async function ensureImage(engine: Dockerode, image: string): Promise<void> {
  try {
    await engine.getImage(image).inspect();
    return;
  } catch { /* pull it */ }
  const password = process.env.HF_REGISTRY_PASSWORD;
  await pullImage(engine, image, password ? { username: process.env.HF_REGISTRY_USERNAME, password, serveraddress: image.split("/")[0]! } : undefined);
}

/** Every path of the volume with its owner, size and (for files) content hash: equal listings mean an exact copy. */
async function volumeListing(engine: Dockerode, image: string, volume: string): Promise<string> {
  const r = await runOneShot(engine, {
    image, volume, role: "move-check", readOnlyVolume: true, capAdd: ["DAC_READ_SEARCH"],
    cmd: ["sh", "-c", "cd /data && find . -print0 | sort -z | xargs -0 stat -c '%n %u:%g %a %s' && find . -type f -print0 | sort -z | xargs -0 -r sha256sum"],
  });
  if (r.exitCode !== 0) throw new Error(`listing volume ${volume} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Whether the volume exists on that engine with anything in it. */
async function volumeHasData(engine: Dockerode, image: string, volume: string): Promise<boolean> {
  try {
    await engine.getVolume(volume).inspect();
  } catch {
    return false;
  }
  const r = await runOneShot(engine, {
    image, volume, role: "move-check", readOnlyVolume: true, capAdd: ["DAC_READ_SEARCH"], cmd: ["sh", "-c", "find /data -mindepth 1 | head -n 1"],
  });
  return r.stdout.trim() !== "";
}

export interface MoveResult {
  customer: string;
  from: string;
  to: string;
  /** the archive the data went through; it stays, as a backup */
  archive: string;
  files: number;
}

/**
 * `fleet move <customer> --env E --to NODE`: stops the customer's service (scaled to 0, so nothing
 * writes), archives its volume on its node, restores it on the other node and checks that every
 * path, owner, mode and file content is the same there, then deploys the customer pinned to the new
 * node. Nothing is deleted: the old node keeps its copy, and the archive stays in the backups.
 * When anything fails before the switch, the service starts again where it was. When fleet itself
 * dies meanwhile (killed, a power cut), the service stays at 0 replicas on its old node, and the next
 * deployment of the customer (`fleet up <env>-<customer>`, provision, rollout) sees that (the swarm
 * service's diff compares the live service, components/swarmService.ts) and starts it again there.
 */
export async function moveCustomer(ctx: FleetContext, req: { customer: string; environment: string; to: string }, log: Log = stderrLog): Promise<MoveResult> {
  const target = parseCustomerTarget(req.customer, req.environment);
  const env = readEnvironmentConfig(ctx.projectDir, target.environment);
  if (env.target !== "swarm") {
    throw new ConfigError("--env", [{ path: "--env", found: JSON.stringify(env.name), message: "runs on one host (target: docker): there is no other node to move to" }]);
  }
  const nodes = env.swarm!.nodes.map((n) => n.name);
  if (!nodes.includes(req.to)) {
    throw new ConfigError("--to", [{ path: "--to", found: JSON.stringify(req.to), message: `must be one of the nodes of '${env.name}' (swarm.nodes): ${nodes.join(", ")}` }]);
  }
  return withStack(ctx, target, log, async (stack) => {
    const customer = readCustomerConfig(ctx.projectDir, target.stack);
    if (!customer?.node) throw new Error(`${target.stack} is not provisioned: run 'fleet provision ${target.customer} --env ${target.environment}' first`);
    const from = customer.node;
    if (from === req.to) throw new ConfigError("--to", [{ path: "--to", found: JSON.stringify(req.to), message: `is where ${target.customer} runs already` }]);
    const image = await stackImage(ctx, target);
    if (!image) throw new Error(`${target.stack} has never been deployed: there is nothing to move`);
    const names = customerNames(target.environment, target.customer);
    const source = nodeEngine(env, from);
    const destination = nodeEngine(env, req.to);
    const manager = dockerHost(ctx.projectDir, env.name) ?? "";
    await ensureImage(destination, image);
    if (await volumeHasData(destination, image, names.dataVolume)) {
      throw new Error(`node ${req.to} already has a volume ${names.dataVolume} with data in it (left by an earlier move?): nothing was changed. ` +
        `Check it and remove it on ${req.to} (docker volume rm ${names.dataVolume}), or move ${target.customer} to another node`);
    }

    log(`${target.stack}: stopping its service so nothing writes while the data moves`);
    await scaleService(manager, names.container, 0);
    let archive: string;
    let files: number;
    try {
      archive = await archiveVolume(source, image, names.dataVolume, backupDir(ctx));
      log(`${target.stack}: archived ${names.dataVolume} on ${from} to ${archive}`);
      await destination.createVolume({ Name: names.dataVolume, Labels: serviceIdentity(target.environment, target.customer).identityLabels });
      await restoreArchive(destination, image, names.dataVolume, archive);
      const [before, after] = await Promise.all([volumeListing(source, image, names.dataVolume), volumeListing(destination, image, names.dataVolume)]);
      if (before !== after) throw new Error(`the copy of ${names.dataVolume} on ${req.to} differs from the original on ${from}`);
      files = after.split("\n").filter((l) => /^[0-9a-f]{64} /.test(l)).length;
      log(`${target.stack}: restored on ${req.to} and checked: ${files} files, the same paths, owners, modes and contents`);
    } catch (err) {
      await scaleService(manager, names.container, 1).catch(() => {});
      throw new Error(`moving ${target.customer} failed, so it runs on ${from} again, unchanged: ${(err as Error).message}`);
    }

    writeCustomerStackFile(ctx.projectDir, { ...customer, node: req.to }, configuredDockerHost(ctx.projectDir, env.name));
    try {
      await runUp(stack, log);
    } catch (err) {
      log(`${target.stack}: the deployment on ${req.to} failed; going back to ${from}`);
      writeCustomerStackFile(ctx.projectDir, customer, configuredDockerHost(ctx.projectDir, env.name));
      // the live service may have the new placement already: put it back where its data is, running
      await scaleService(manager, names.container, 1, 120, from).catch(() => {});
      throw new Error(`moving ${target.customer} to ${req.to} failed at the switch, so it runs on ${from} again (its data there untouched): ${(err as Error).message}`);
    }
    return { customer: target.customer, from, to: req.to, archive, files };
  });
}
