/** Real Docker engine helpers for tests: wait for health, clean up by name. */
import Dockerode from "dockerode";
import { customerNames, edgeNames, logCollectorNames, legacyCustomerNetwork } from "../../src/hardening/names";
import type { ServiceSpec } from "../../src/hardening/serviceSpec";
import { execIn, type ExecResult } from "../../src/engine/exec";
import { writeSecretFile } from "../../src/engine/secretFile";
import { TOOLS_IMAGE } from "../../src/engine/toolsImage";

export const engine = new Dockerode();

export async function waitHealthy(container: Dockerode.Container, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let status = "unknown";
  while (Date.now() < deadline) {
    const info = await container.inspect();
    status = info.State.Health?.Status ?? "none";
    if (status === "healthy" || !info.State.Running) return status;
    await new Promise((r) => setTimeout(r, 500));
  }
  return status;
}

export async function removeQuietly(names: { containers?: string[]; networks?: string[]; volumes?: string[]; images?: string[] }) {
  for (const c of names.containers ?? []) await engine.getContainer(c).remove({ force: true }).catch(() => {});
  for (const n of names.networks ?? []) await engine.getNetwork(n).remove().catch(() => {});
  for (const v of names.volumes ?? []) await engine.getVolume(v).remove({ force: true }).catch(() => {});
  for (const i of names.images ?? []) await engine.getImage(i).remove({ force: true }).catch(() => {});
}

/** Writes the key file a container of `spec` reads at start (what the SecretFile resource does on deploy). */
export async function writeKeyFile(spec: ServiceSpec, key: string): Promise<void> {
  await writeSecretFile(engine, spec.secretFile!, key, { image: spec.image, labels: spec.identityLabels });
}

/** What a customer container of `spec` needs, made anew: its network, data volume and key file (any left by an earlier run removed first). */
export async function prepareSpec(spec: ServiceSpec, key: string): Promise<void> {
  await removeQuietly({ containers: [spec.containerName], networks: [spec.networkName], volumes: [spec.dataVolumeName, spec.secretFile!.volume] });
  await engine.createNetwork({ Name: spec.networkName, Labels: spec.identityLabels });
  await engine.createVolume({ Name: spec.dataVolumeName, Labels: spec.identityLabels });
  await writeKeyFile(spec, key);
}

/**
 * The customer's current container: its name ends in the slot of its spec, so tests find it by its
 * labels; while an update runs there may be two, and the newest is the one being deployed.
 */
export async function customerContainer(environment: string, customer: string): Promise<Dockerode.ContainerInspectInfo | undefined> {
  const found = await engine.listContainers({ all: true, filters: { label: [`io.hardened-fleet.environment=${environment}`, `io.hardened-fleet.customer=${customer}`] } });
  const newest = found.sort((a, b) => b.Created - a.Created)[0];
  return newest ? engine.getContainer(newest.Id).inspect().catch(() => undefined) : undefined;
}

/** Every container of the customer (a finished deployment leaves exactly one). */
export async function customerContainers(environment: string, customer: string): Promise<string[]> {
  const found = await engine.listContainers({ all: true, filters: { label: [`io.hardened-fleet.environment=${environment}`, `io.hardened-fleet.customer=${customer}`] } });
  return found.map((c) => c.Names[0]!.replace(/^\//, ""));
}

/** Removes everything of the given customers (all their containers, both networks, the volume) and edge proxies. */
export async function removeCustomers(list: [string, string][], edges: [string, string][] = []): Promise<void> {
  // the proxies first: a network the proxy is still connected to cannot be removed
  for (const [environment, name] of edges) await removeQuietly({ containers: [edgeNames(environment, name).container] });
  for (const [environment, customer] of list) {
    const n = customerNames(environment, customer);
    await removeQuietly({
      containers: await customerContainers(environment, customer),
      networks: [n.network, legacyCustomerNetwork(environment, customer)],
      volumes: [n.dataVolume, n.secretsVolume],
    });
  }
  for (const [environment, name] of edges) {
    const n = edgeNames(environment, name);
    const logs = logCollectorNames(environment, name);
    await removeQuietly({ containers: [logs.container] });
    await removeQuietly({ networks: [n.network, logs.network], volumes: [n.dataVolume, logs.dataVolume] });
  }
}

/**
 * Runs `code` (lines of Python) in a customer's running container with the app's own interpreter:
 * its runtime has no shell, cat or find.
 */
export function python(container: Dockerode.Container, code: string[], timeoutMs?: number): Promise<ExecResult> {
  return execIn(container, ["/opt/venv/bin/python", "-c", code.join("\n")], timeoutMs);
}

/** Runs `sh -c script` in a throwaway container (fleet's tools image) with the volume at /data (read only); returns its output. */
export async function inVolume(volume: string, script: string, image = TOOLS_IMAGE): Promise<string> {
  const c = await engine.createContainer({ Image: image, Entrypoint: [], Cmd: ["sh", "-c", script], User: "0:0",
    HostConfig: { NetworkMode: "none", Mounts: [{ Type: "volume", Source: volume, Target: "/data", ReadOnly: true }] } });
  try {
    const out = await c.attach({ stream: true, stdout: true, stderr: true });
    const chunks: Buffer[] = [];
    out.on("data", (b: Buffer) => chunks.push(b));
    await c.start();
    await c.wait();
    // the attach stream is multiplexed: 8-byte frame headers before each chunk
    const raw = Buffer.concat(chunks);
    const parts: Buffer[] = [];
    for (let at = 0; at + 8 <= raw.length;) {
      const len = raw.readUInt32BE(at + 4);
      parts.push(raw.subarray(at + 8, at + 8 + len));
      at += 8 + len;
    }
    return Buffer.concat(parts).toString("utf8");
  } finally {
    await c.remove({ force: true }).catch(() => {});
  }
}
