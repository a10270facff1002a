/**
 * ImageAttestation (dynamic resource type hardened-fleet:ImageAttestation): what a build environment
 * does once per image it builds (src/supplyChain/attest.ts): the SBOM, the vulnerability scan and the
 * signature of the image's digest, kept beside the image (registry tags sha256-<hex>.sig and .sbom, or
 * fleet's store). A new image is a new attestation; the outputs are the stack output `supplyChain`.
 */
import * as pulumi from "@pulumi/pulumi";
import { projectModule, projectRoot, providerEngine } from "./providerRuntime";

/** The compiled attestation, which the provider process loads (found at run time: no path in the state). */
export const ATTEST_MODULE = "src/supplyChain/attest.js";

export interface ImageAttestationInputs {
  imageRef: pulumi.Input<string>;
  imageName: pulumi.Input<string>;
  /** the engine that built the image ("" for the local socket) */
  dockerHost: pulumi.Input<string>;
  /** the registry it was pushed to, with its account (a secret), if any */
  registry?: pulumi.Input<{ address: string; auth?: { username: string; password: string } }>;
  /** the signing key (PEM), a Pulumi secret */
  privateKeyPem: pulumi.Input<string>;
  /** supplyChain.database */
  database?: pulumi.Input<string>;
}

interface State {
  imageRef: string;
  imageName: string;
  dockerHost?: string;
  registry?: { address: string; auth?: { username: string; password: string } };
  privateKeyPem: string;
  database?: string;
  summary?: unknown;
}

async function attest(state: State): Promise<State> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { attestImage } = require(projectModule(ATTEST_MODULE));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const path = require("node:path");
  const summary = await attestImage({
    imageRef: state.imageRef, imageName: state.imageName, engine: providerEngine(state.dockerHost),
    dockerHost: state.dockerHost || undefined, registry: state.registry, privateKeyPem: state.privateKeyPem,
    // a relative supplyChain.database is relative to the project (the provider runs in dist/)
    database: state.database === undefined ? undefined : path.resolve(projectRoot(), state.database),
    projectDir: projectRoot(),
  });
  return { ...state, summary };
}

const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: State) {
    const outs = await attest(inputs);
    return { id: inputs.imageRef, outs };
  },
  async diff(_id: string, olds: State, news: State) {
    // another image is another attestation; a new key or database signs and scans the same image again
    const replaces = olds.imageRef !== news.imageRef ? ["imageRef"] : [];
    const changes = replaces.length > 0 || olds.privateKeyPem !== news.privateKeyPem || olds.database !== news.database;
    return { changes, replaces, deleteBeforeReplace: false };
  },
  async update(_id: string, _olds: State, news: State) {
    return { outs: await attest(news) };
  },
  // the signature and the SBOM stay with the image: a prod stack may still run it
};

export class ImageAttestation extends pulumi.dynamic.Resource {
  declare readonly summary: pulumi.Output<Record<string, unknown>>;

  constructor(name: string, args: ImageAttestationInputs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args, summary: undefined }, { ...opts, additionalSecretOutputs: ["privateKeyPem", "registry"] },
      "hardened-fleet", "ImageAttestation");
  }
}
