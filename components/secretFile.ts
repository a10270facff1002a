/**
 * SecretFile (dynamic resource type hardened-fleet:SecretFile, like the gate and the route): the app's secret key as a file
 * on a volume of its own (`hf-<env>-<customer>-secrets`), which the container mounts read-only at
 * /run/secrets, the way the swarm target's Swarm secret is mounted. Owner 1000:1000, mode 0400: in
 * no image layer, no environment variable (docker inspect and /proc/<pid>/environ show only its
 * path), and under the engine's data root on the host (root only).
 *
 * The container's root filesystem is read-only and a tmpfs is empty at start, so the file is written
 * before the container exists, through the Engine API (src/engine/secretFile.ts: a helper container,
 * never started, and an archive upload). A new key rewrites it; the running app keeps the key it read
 * at start until its next start. The volume holds nothing but the key, re-creatable from the state:
 * it is not customer data (no archive, no backup) and goes with the stack.
 */
import * as pulumi from "@pulumi/pulumi";
import type { SecretFileSpec } from "../src/hardening/serviceSpec";
import { projectModule, providerEngine } from "./providerRuntime";

/** The compiled writer, which the provider process loads (found at run time: no path in the state). */
export const SECRET_FILE_MODULE = "src/engine/secretFile.js";

export interface SecretFileInputs {
  file: pulumi.Input<SecretFileSpec>;
  /** the key: a Pulumi secret */
  content: pulumi.Input<string>;
  /** an image on the engine for the helper container (never started): the app's own */
  image: pulumi.Input<string>;
  /** labels of the volume */
  labels: pulumi.Input<Record<string, string>>;
  /** the engine the container runs on ("" for the local socket) */
  dockerHost: pulumi.Input<string>;
}

interface State {
  file: SecretFileSpec;
  content: string;
  image: string;
  labels: Record<string, string>;
  dockerHost?: string;
}

async function write(state: State): Promise<State> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { writeSecretFile } = require(projectModule(SECRET_FILE_MODULE));
  await writeSecretFile(providerEngine(state.dockerHost), state.file, state.content, { image: state.image, labels: state.labels });
  return state;
}

const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: State) {
    return { id: `${inputs.file.volume}/${inputs.file.fileName}`, outs: await write(inputs) };
  },
  async diff(_id: string, olds: State, news: State) {
    // another volume is another resource; a new key (or owner, or name) is the same file rewritten.
    // The image only runs the helper, and the labels are set once with the volume: neither is a change.
    const replaces = olds.file.volume !== news.file.volume || olds.file.dir !== news.file.dir ? ["file"] : [];
    const changes = replaces.length > 0 || olds.content !== news.content || olds.file.fileName !== news.file.fileName;
    return { changes, replaces, deleteBeforeReplace: false };
  },
  async update(_id: string, _olds: State, news: State) {
    return { outs: await write(news) };
  },
  async read(id: string, props: State) {
    try {
      await providerEngine(props.dockerHost).getVolume(props.file.volume).inspect();
      return { id, props };
    } catch {
      return { id: "", props: {} }; // the volume is gone: the next deployment writes it again
    }
  },
  async delete(_id: string, props: State) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    await require(projectModule(SECRET_FILE_MODULE)).removeSecretFile(providerEngine(props.dockerHost), props.file.volume);
  },
};

export class SecretFile extends pulumi.dynamic.Resource {
  declare readonly file: pulumi.Output<SecretFileSpec>;

  constructor(name: string, args: SecretFileInputs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args }, { ...opts, additionalSecretOutputs: ["content"] }, "hardened-fleet", "SecretFile");
  }
}
