/**
 * Runs a command inside a running container through the Engine API and collects its output: the one
 * exec helper of fleet, the audit and the dynamic providers (components/providerRuntime.ts `runIn`).
 */
import { PassThrough } from "node:stream";
import type Dockerode from "dockerode";

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they came, for messages that quote what the command said */
  output: string;
}

export async function execIn(container: Dockerode.Container, cmd: string[], timeoutMs = 30_000): Promise<ExecResult> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[], all: [] as Buffer[] };
  out.on("data", (c: Buffer) => { chunks.out.push(c); chunks.all.push(c); });
  err.on("data", (c: Buffer) => { chunks.err.push(c); chunks.all.push(c); });
  container.modem.demuxStream(stream, out, err);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`exec ${cmd.join(" ")} timed out after ${timeoutMs} ms`)), timeoutMs);
    stream.on("end", () => { clearTimeout(timer); resolve(); });
    stream.on("error", (e: Error) => { clearTimeout(timer); reject(e); });
  });
  const info = await exec.inspect();
  return {
    exitCode: info.ExitCode ?? -1,
    stdout: Buffer.concat(chunks.out).toString("utf8"),
    stderr: Buffer.concat(chunks.err).toString("utf8"),
    output: Buffer.concat(chunks.all).toString("utf8"),
  };
}

/** The container named `name` when it is running; undefined when it is not there or stopped. */
export async function runningContainer(engine: Dockerode, name: string): Promise<Dockerode.Container | undefined> {
  const c = engine.getContainer(name);
  try {
    return (await c.inspect()).State.Running ? c : undefined;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw err;
  }
}
