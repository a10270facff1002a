/**
 * The environment's edge proxy, seen from fleet: its host ports checked before the environment is
 * deployed, its infrastructure containers looked for (made again when removed outside fleet), and the
 * root certificate of its local CA (`fleet edge ca`).
 */
import * as net from "node:net";
import type Dockerode from "dockerode";
import { ConfigError } from "../config/errors";
import { execIn } from "../engine/exec";
import { EDGE_CA_ROOT } from "../edge/routes";
import { edgeNames, logCollectorNames } from "../hardening/names";
import { readStack } from "../pulumi/stackState";
import { stderrLog, type Log } from "../pulumi/progress";
import { upTarget, type UpResult } from "../pulumi/stacks";
import { parseEnvironmentName } from "../config/targets";
import { requestThroughEdge } from "../watch/probe";
import type { Environment } from "./environment";

/** Whether nothing on this host listens on address:port (a foreign process or another container). */
export function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Host ports the proxy container `name` publishes now (none when there is no such container). */
async function proxyBindings(engine: Dockerode, name: string): Promise<Set<string>> {
  try {
    const info = await engine.getContainer(name).inspect();
    return new Set(Object.values(info.HostConfig.PortBindings ?? {}).flat()
      .map((b) => `${(b as { HostIp: string }).HostIp}:${(b as { HostPort: string }).HostPort}`));
  } catch {
    return new Set();
  }
}

/**
 * Before an environment is deployed: each edge port is free, or the environment's own proxy holds it.
 * Only for the local engine: a remote engine's ports are not this host's to probe.
 */
export async function checkEdgePorts(environment: Environment): Promise<void> {
  if (environment.engineHost !== undefined) return;
  const { edge, name } = environment.config;
  const ours = await proxyBindings(environment.engine(), edgeNames(name, edge.name).container);
  const problems = [];
  for (const [key, port] of [["httpsPort", edge.httpsPort], ["httpPort", edge.httpPort]] as const) {
    if (ours.has(`${edge.address}:${port}`) || await portFree(edge.address, port)) continue;
    problems.push({ path: `edge.${key}`, found: String(port),
      message: `${edge.address}:${port} is in use by another program on this host: stop it, or set another edge.${key} in Pulumi.${name}.yaml` });
  }
  if (problems.length > 0) throw new ConfigError(`environment '${name}'`, problems);
}

/**
 * The environment's own containers (its edge proxy, its log collectors) that its stack has made but
 * the engines no longer have: removed outside fleet, or a new engine. A `pulumi up` alone would not
 * see them gone (its state says they exist). Empty before the first deployment.
 */
export async function missingInfrastructure(environment: Environment): Promise<string[]> {
  const state = await readStack(environment.ctx, environment.name);
  if (!state?.outputs.edge) return [];
  const { name, edge } = environment.config;
  const wanted: { engine: Dockerode; container: string; where: string }[] = [
    { engine: environment.engine(), container: edgeNames(name, edge.name).container, where: "" },
  ];
  if (state.outputs.logs) {
    const collector = logCollectorNames(name, edge.name).container;
    for (const { node, engine } of environment.target.engines()) wanted.push({ engine, container: collector, where: node ? ` on ${node}` : "" });
  }
  const missing: string[] = [];
  for (const w of wanted) {
    // an engine that does not answer (a node down) is not a container gone: the run says what fails
    const gone = await w.engine.getContainer(w.container).inspect().then(() => false, (err: { statusCode?: number }) => err.statusCode === 404);
    if (gone) missing.push(`${w.container}${w.where}`);
  }
  return missing;
}

/**
 * Deploys the environment's stack as configured; a port another program holds is reported first,
 * naming the setting. `refresh` reads what exists first; it is on by itself when one of the
 * environment's own containers is gone, so that the run makes it again.
 */
export async function upEnvironment(environment: Environment, log: Log = stderrLog, opts: { refresh?: boolean } = {}): Promise<UpResult> {
  await checkEdgePorts(environment);
  const target = parseEnvironmentName(environment.name, "environment");
  let refresh = opts.refresh;
  if (!refresh) {
    const missing = await missingInfrastructure(environment);
    if (missing.length > 0) {
      log(`${environment.name}: ${missing.join(", ")} not on the engine (removed outside fleet?): reading what exists first, to make it again`);
      refresh = true;
    }
  }
  return upTarget(environment.ctx, target, log, environment.stackSettings(target), { refresh });
}

/** The PEM root certificate of the environment's local CA (edge.tls: internal): what clients must trust. */
export async function edgeRootCertificate(env: Environment): Promise<string> {
  const { edge, name } = env.config;
  const environment = env.name;
  if (edge.tls !== "internal") {
    throw new Error(`environment '${environment}' uses edge.tls: ${edge.tls}: its certificates come from a public CA, which clients trust already`);
  }
  const container = edgeNames(name, edge.name).container;
  let result;
  try {
    result = await execIn(env.engine().getContainer(container), ["cat", EDGE_CA_ROOT]);
  } catch (err) {
    throw new Error(`the edge proxy ${container} is not running (${(err as Error).message.split("\n")[0]}): run 'fleet up ${environment}' first`);
  }
  if (result.exitCode !== 0 || !result.stdout.includes("BEGIN CERTIFICATE")) {
    throw new Error(`the edge proxy ${container} has no local CA yet (it makes one for its first customer): provision a customer first`);
  }
  return result.stdout;
}

/**
 * GET `url` (https://<customer>.<edge.domain>…) through the environment's proxy: connects to
 * edge.address whatever the name resolves to, sends the hostname (SNI and Host) and checks the
 * certificate against `ca`. For the demo and `fleet edge check`: names under .localhost resolve nowhere
 * but to this host anyway.
 */
export async function getThroughEdge(address: string, url: string, ca: string | undefined): Promise<{ status: number; body: string }> {
  const { status, body } = await requestThroughEdge(address, url, ca, 10_000);
  return { status, body };
}
