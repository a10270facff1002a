/**
 * target: swarm — deploying one customer's service through the manager's Engine API, and finding
 * its task (the container Swarm runs) on whichever node it is. Used by the SwarmService resource
 * (components/swarmService.ts, whose provider process loads this file) and by fleet (audit, list,
 * move, rollout gate).
 *
 * A deployment is done when Swarm says so: a new service has a running task (Swarm reports a task
 * with a healthcheck as running only once it is healthy), an updated one has finished its rolling
 * update (the new task stayed healthy for the monitor period). An update whose new task fails is
 * rolled back by Swarm itself (UpdateConfig.FailureAction: rollback); the deployment then fails with
 * what the task said, and the old task never stopped serving. A task that is running but fails the
 * hardening audit is rolled back the same way.
 *
 * What runs is compared with what fleet wants (liveDrift): a service scaled to 0 by an interrupted
 * `fleet move`, or changed by hand, is a change the next deployment repairs, not "no change".
 */
import * as crypto from "node:crypto";
import type Dockerode from "dockerode";
import { auditContainer, failedChecks, type ContainerAudit } from "../audit/audit";
import { engineAt } from "../engine/client";
import { NODE_LABEL, placementConstraint } from "./serviceSpec";

export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

export interface SwarmDeployInputs {
  /** the manager's engine ("" for the local socket) */
  managerHost: string;
  /** swarm.nodes: node name -> engine address, to audit the task where it runs */
  nodeHosts: Record<string, string>;
  /** the Engine API service spec (src/swarm/serviceSpec.ts) */
  spec: Record<string, unknown> & { Name: string };
  registryAuth?: RegistryAuth;
  /** seconds the whole deployment (pull, start, healthy, monitor) may take */
  timeoutSeconds: number;
}

export interface DeployedService {
  serviceId: string;
  node: string;
  containerId: string;
}

export interface RunningTask {
  taskId: string;
  containerId: string;
  nodeId: string;
  /** the node's hardened-fleet.node label */
  node: string;
  image: string;
}

// the SwarmService provider loads engineAt from this module, and so do the providers in existing stacks' state
export { engineAt };

type Inspect = { ID: string; Version: { Index: number }; Spec: Record<string, unknown>; UpdateStatus?: { State?: string; Message?: string; StartedAt?: string } };

/**
 * The service label with the hash of the spec fleet deployed. Swarm stores a spec with its own
 * defaults and network IDs, so the stored spec is not compared field by field: the hash says whether
 * fleet's spec is the one deployed, and the fields that change behind fleet's back (a `fleet move`
 * interrupted at 0 replicas, `docker service scale/update`) are compared as they are.
 */
export const SPEC_HASH_LABEL = "io.hardened-fleet.spec-hash";

/** JSON with sorted keys: the Pulumi state gives a spec back with its keys in another order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The hash of a service spec as fleet makes it (without the hash label). Pure. */
export function specHash(spec: Record<string, unknown>): string {
  const labels = { ...(spec.Labels as Record<string, string> | undefined) };
  delete labels[SPEC_HASH_LABEL];
  return crypto.createHash("sha256").update(canonical({ ...spec, Labels: labels })).digest("hex").slice(0, 32);
}

/** The spec as it is sent to Swarm: with the hash label. Pure. */
export function labelledSpec<T extends Record<string, unknown>>(spec: T): T {
  return { ...spec, Labels: { ...(spec.Labels as Record<string, string> | undefined), [SPEC_HASH_LABEL]: specHash(spec) } };
}

type SpecView = { Labels?: Record<string, string>; Mode?: { Replicated?: { Replicas?: number } };
  TaskTemplate?: { ContainerSpec?: { Image?: string }; Placement?: { Constraints?: string[] } } };

/**
 * How the live service differs from the spec fleet wants, in words; empty when it runs that spec.
 * `live` is the service's Spec as the manager reports it, undefined when the service is gone. Pure.
 */
export function liveDrift(live: Record<string, unknown> | undefined, desired: Record<string, unknown>): string[] {
  if (!live) return ["the service does not exist"];
  const l = live as SpecView;
  const d = desired as SpecView;
  const drift: string[] = [];
  const replicas = (s: SpecView) => s.Mode?.Replicated?.Replicas ?? (s.Mode?.Replicated ? 1 : undefined);
  if (replicas(l) !== replicas(d)) drift.push(`replicas ${replicas(l) ?? "(not replicated)"}, wanted ${replicas(d)}`);
  const image = (s: SpecView) => s.TaskTemplate?.ContainerSpec?.Image;
  if (image(l) !== image(d)) drift.push(`image ${image(l)}, wanted ${image(d)}`);
  const placement = (s: SpecView) => JSON.stringify(s.TaskTemplate?.Placement?.Constraints ?? []);
  if (placement(l) !== placement(d)) drift.push(`placement ${placement(l)}, wanted ${placement(d)}`);
  const hash = l.Labels?.[SPEC_HASH_LABEL];
  if (hash !== specHash(desired)) drift.push(hash ? "a spec other than fleet's (changed outside fleet)" : "a spec fleet has not labelled yet");
  return drift;
}

/** liveDrift against the manager's service `spec.Name`. */
export async function serviceDrift(managerHost: string, spec: Record<string, unknown> & { Name: string }): Promise<string[]> {
  const service = await findService(engineAt(managerHost), spec.Name);
  return liveDrift(service?.Spec, spec);
}

/**
 * The stored spec as the live service has it, for `read` (refresh): its replicas, image, placement,
 * and the hash label when the live spec is not the stored one, so the next diff sees the difference. Pure.
 */
export function liveView(stored: Record<string, unknown>, live: Record<string, unknown>): Record<string, unknown> {
  const l = live as SpecView;
  const s = stored as SpecView & Record<string, unknown>;
  const template = (s.TaskTemplate ?? {}) as Record<string, unknown> & SpecView["TaskTemplate"];
  const view: Record<string, unknown> = {
    ...stored,
    Mode: l.Mode ?? s.Mode,
    TaskTemplate: {
      ...template,
      ContainerSpec: { ...template.ContainerSpec, Image: l.TaskTemplate?.ContainerSpec?.Image },
      Placement: { ...template.Placement, Constraints: l.TaskTemplate?.Placement?.Constraints ?? [] },
    },
  };
  const hash = l.Labels?.[SPEC_HASH_LABEL];
  if (hash !== specHash(stored)) view.Labels = { ...s.Labels, [SPEC_HASH_LABEL]: hash ?? "none" };
  return view;
}

/** An Engine API call; `query` goes in the query string, `body` as JSON (docker-modem's _query and _body). */
async function dial<T>(engine: Dockerode, path: string, method: "GET" | "POST", body?: unknown, auth?: RegistryAuth,
  query?: Record<string, string | number>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    engine.modem.dial({
      path: query ? `${path}?` : path, method, options: query ? { _query: query, _body: body ?? {} } : body ?? {}, authconfig: auth,
      statusCodes: { 200: true, 201: true, 400: "bad parameter", 404: "no such service", 409: "name conflicts", 500: "server error", 503: "node is not part of a swarm" },
    }, (err: Error | null, data: unknown) => (err ? reject(err) : resolve(data as T)));
  });
}

export async function findService(manager: Dockerode, name: string): Promise<Inspect | undefined> {
  const found = (await manager.listServices({ filters: { name: [name] } })) as unknown as Inspect[];
  return found.find((s) => (s.Spec as { Name?: string }).Name === name);
}

/** Node id -> its hardened-fleet.node label. */
async function nodeLabels(manager: Dockerode): Promise<Map<string, string>> {
  const nodes = (await manager.listNodes()) as { ID: string; Spec?: { Labels?: Record<string, string> }; Description?: { Hostname?: string } }[];
  return new Map(nodes.map((n) => [n.ID, n.Spec?.Labels?.[NODE_LABEL] ?? n.Description?.Hostname ?? n.ID]));
}

type Task = {
  ID: string; NodeID?: string; DesiredState: string; CreatedAt: string;
  Spec: { ContainerSpec?: { Image?: string } };
  Status: { State: string; Err?: string; Message?: string; ContainerStatus?: { ContainerID?: string; ExitCode?: number } };
};

async function tasksOf(manager: Dockerode, serviceName: string): Promise<Task[]> {
  const tasks = (await manager.listTasks({ filters: { service: [serviceName] } })) as Task[];
  return tasks.sort((a, b) => b.CreatedAt.localeCompare(a.CreatedAt));
}

/** The service's running task (the newest, while an update has two), or undefined. */
export async function runningTask(manager: Dockerode, serviceName: string): Promise<RunningTask | undefined> {
  const tasks = await tasksOf(manager, serviceName);
  const task = tasks.find((t) => t.Status.State === "running" && t.DesiredState === "running" && t.Status.ContainerStatus?.ContainerID);
  if (!task) return undefined;
  const labels = await nodeLabels(manager);
  return {
    taskId: task.ID, containerId: task.Status.ContainerStatus!.ContainerID!, nodeId: task.NodeID ?? "",
    node: labels.get(task.NodeID ?? "") ?? "?", image: task.Spec.ContainerSpec?.Image ?? "",
  };
}

/** What the newest failed tasks said: the reason a deployment is reported with. */
async function lastFailures(manager: Dockerode, serviceName: string): Promise<string> {
  const failed = (await tasksOf(manager, serviceName)).filter((t) => ["failed", "rejected", "shutdown"].includes(t.Status.State) && (t.Status.Err || t.Status.ContainerStatus?.ExitCode));
  return failed.slice(0, 2).map((t) => `${t.Status.State}: ${t.Status.Err ?? t.Status.Message ?? ""}${t.Status.ContainerStatus?.ExitCode ? ` (exit ${t.Status.ContainerStatus.ExitCode})` : ""}`).join("; ") || "no task said why";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the service runs its current spec: a first deployment until its task runs (healthy), an
 * update until Swarm finished it. Fails when Swarm rolled it back or paused it, or on timeout.
 */
async function waitConverged(manager: Dockerode, name: string, image: string, updating: boolean, timeoutSeconds: number,
  staleStartedAt?: string): Promise<RunningTask> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const service = await findService(manager, name);
    if (!service) throw new Error(`service ${name} disappeared while it was being deployed`);
    // an update that changes no task (replicas, labels) starts no rolling update: the status of the
    // one before (a rollback, perhaps) is not this update's
    const state = service.UpdateStatus?.StartedAt !== staleStartedAt ? service.UpdateStatus?.State : undefined;
    // a rollback is reported once it is over: the deployment ends with the old spec serving again
    if (updating && state === "rollback_started" && Date.now() < deadline) {
      await sleep(250);
      continue;
    }
    if (updating && state && /rollback|paused/.test(state)) {
      throw new Error(`service ${name}: the update failed and Swarm ${state === "paused" ? "paused it" : "rolled it back"} ` +
        `(${service.UpdateStatus?.Message ?? ""}); the task it replaced keeps serving. Its new task: ${await lastFailures(manager, name)}`);
    }
    const done = !updating || !state || state === "completed";
    if (done) {
      const task = await runningTask(manager, name);
      if (task && task.image === image) return task;
    }
    if (Date.now() > deadline) {
      throw new Error(`service ${name} did not run its new spec healthy within ${timeoutSeconds}s (update state: ${state ?? "none"}); ` +
        `its tasks: ${await lastFailures(manager, name)}`);
    }
    await sleep(250);
  }
}

/** The hardening audit of a task, on the node it runs on. */
export async function auditTask(task: RunningTask, nodeHosts: Record<string, string>): Promise<ContainerAudit> {
  const host = Object.hasOwn(nodeHosts, task.node) ? nodeHosts[task.node] : undefined;
  if (host === undefined) {
    throw new Error(`task ${task.taskId} runs on node '${task.node}', which swarm.nodes does not list: add it (name and engine address) to audit it`);
  }
  return auditContainer(engineAt(host), task.containerId);
}

/** Asks Swarm to go back to the service's previous spec (after a running task failed the audit). */
async function rollBack(manager: Dockerode, name: string): Promise<void> {
  const service = await findService(manager, name);
  if (!service) return;
  await dial(manager, `/services/${service.ID}/update`, "POST", service.Spec, undefined, { version: service.Version.Index, rollback: "previous" });
}

/** Creates or updates the service and waits until it runs healthy and audit-clean. */
export async function deployService(inputs: SwarmDeployInputs): Promise<DeployedService> {
  const manager = engineAt(inputs.managerHost);
  const name = inputs.spec.Name;
  const image = String(((inputs.spec.TaskTemplate as Record<string, unknown>).ContainerSpec as { Image: string }).Image);
  const existing = await findService(manager, name);
  const spec = labelledSpec(inputs.spec);
  let serviceId: string;
  if (!existing) {
    serviceId = (await dial<{ ID: string }>(manager, "/services/create", "POST", spec, inputs.registryAuth)).ID;
  } else {
    serviceId = existing.ID;
    await dial(manager, `/services/${existing.ID}/update`, "POST", spec, inputs.registryAuth, { version: existing.Version.Index });
  }
  const task = await waitConverged(manager, name, image, existing !== undefined, inputs.timeoutSeconds, existing?.UpdateStatus?.StartedAt);
  const audit = await auditTask(task, inputs.nodeHosts);
  if (!audit.ok) {
    const failed = failedChecks(audit.checks).join("; ");
    if (existing) await rollBack(manager, name).catch(() => {});
    throw new Error(`service ${name} (task ${audit.container} on ${task.node}) failed the hardening audit, so it gets no traffic` +
      `${existing ? " and Swarm goes back to its previous spec" : ""}: ${failed}`);
  }
  return { serviceId, node: task.node, containerId: task.containerId };
}

/** Removes the service (its data volume stays on its node) and waits until its task containers are gone. */
export async function removeService(managerHost: string, name: string, timeoutSeconds = 60): Promise<void> {
  const manager = engineAt(managerHost);
  const service = await findService(manager, name);
  if (!service) return;
  await manager.getService(service.ID).remove();
  const deadline = Date.now() + timeoutSeconds * 1000;
  while (Date.now() < deadline) {
    const tasks = await tasksOf(manager, name).catch(() => [] as Task[]);
    if (tasks.every((t) => !["running", "starting", "preparing", "assigned", "accepted", "ready", "pending", "new"].includes(t.Status.State))) return;
    await sleep(250);
  }
}

/**
 * Sets the service's replicas (0 stops it without forgetting it: fleet move), and with `node` its
 * placement too; waits until that many tasks run.
 */
export async function scaleService(managerHost: string, name: string, replicas: number, timeoutSeconds = 120, node?: string): Promise<void> {
  const manager = engineAt(managerHost);
  const service = await findService(manager, name);
  if (!service) throw new Error(`service ${name} does not exist`);
  const template = service.Spec.TaskTemplate as Record<string, unknown>;
  const spec = {
    ...service.Spec, Mode: { Replicated: { Replicas: replicas } },
    ...(node ? { TaskTemplate: { ...template, Placement: { ...(template.Placement as object), Constraints: [placementConstraint(node)] } } } : {}),
  };
  await dial(manager, `/services/${service.ID}/update`, "POST", spec, undefined, { version: service.Version.Index });
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const tasks = await tasksOf(manager, name);
    const live = tasks.filter((t) => !["shutdown", "failed", "rejected", "complete", "orphaned", "remove"].includes(t.Status.State));
    const running = tasks.filter((t) => t.Status.State === "running" && t.DesiredState === "running");
    if (replicas === 0 ? live.length === 0 : running.length >= replicas) return;
    if (Date.now() > deadline) throw new Error(`service ${name} did not reach ${replicas} running task(s) within ${timeoutSeconds}s`);
    await sleep(250);
  }
}

/**
 * Starts the service's task again with its spec unchanged (ForceUpdate), as its update settings say
 * (start-first: the new task is healthy before the old one stops); waits until Swarm finished it.
 * After a restore, the app reads its data anew.
 */
export async function restartService(managerHost: string, name: string, timeoutSeconds = 180): Promise<void> {
  const manager = engineAt(managerHost);
  const service = await findService(manager, name);
  if (!service) throw new Error(`service ${name} does not exist`);
  const template = service.Spec.TaskTemplate as Record<string, unknown>;
  const spec = { ...service.Spec, TaskTemplate: { ...template, ForceUpdate: Number(template.ForceUpdate ?? 0) + 1 } };
  const image = String((template.ContainerSpec as { Image: string }).Image);
  await dial(manager, `/services/${service.ID}/update`, "POST", spec, undefined, { version: service.Version.Index });
  await waitConverged(manager, name, image, true, timeoutSeconds, service.UpdateStatus?.StartedAt);
}
