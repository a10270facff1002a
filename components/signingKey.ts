/**
 * SigningKey (dynamic resource type hardened-fleet:SigningKey, like the gate and the route): the key a build
 * environment signs its images with, made once (ECDSA P-256) and kept only in the stack's state as a
 * Pulumi secret. Nothing changes it: a new key is a new resource (or the operator's own key, the
 * secret config hardened-fleet:signingKey, which the environment program then uses instead).
 */
import * as pulumi from "@pulumi/pulumi";
import { projectModule } from "./providerRuntime";

/** The compiled signing module, which the provider process loads (found at run time: no path in the state). */
export const SIGNATURE_MODULE = "src/supplyChain/signature.js";

interface State {
  privateKeyPem: string;
  publicKeyPem: string;
  fingerprint: string;
}

const provider: pulumi.dynamic.ResourceProvider = {
  async create() {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { generateSigningKey, keyFingerprint } = require(projectModule(SIGNATURE_MODULE));
    const { privateKeyPem, publicKeyPem } = generateSigningKey();
    const outs: State = { privateKeyPem, publicKeyPem, fingerprint: keyFingerprint(publicKeyPem) };
    return { id: outs.fingerprint, outs };
  },
  async diff() {
    return { changes: false };
  },
};

export class SigningKey extends pulumi.dynamic.Resource {
  declare readonly privateKeyPem: pulumi.Output<string>;
  declare readonly publicKeyPem: pulumi.Output<string>;
  declare readonly fingerprint: pulumi.Output<string>;

  constructor(name: string, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { privateKeyPem: undefined, publicKeyPem: undefined, fingerprint: undefined },
      { ...opts, additionalSecretOutputs: ["privateKeyPem"] }, "hardened-fleet", "SigningKey");
  }
}
