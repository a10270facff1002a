/** Pulling an image through the engine (which honours its own insecure-registries and mirrors). */
import type Dockerode from "dockerode";

export interface RegistryAccount {
  username?: string;
  password: string;
  serveraddress: string;
}

/** Pulls `ref` and waits until the engine has it; rejects with the engine's error. */
export async function pullImage(engine: Dockerode, ref: string, auth?: RegistryAccount): Promise<void> {
  const stream = await engine.pull(ref, auth ? { authconfig: auth } : {});
  await new Promise<void>((resolve, reject) => engine.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())));
}
