/** Real Docker engine helpers for tests: wait for health, clean up by name. */
import Dockerode from "dockerode";

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
