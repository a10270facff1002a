/**
 * hardened-fleet:image:HardenedImage — the app image, built once per source version with a
 * multi-stage Dockerfile (rendered from the template, or the operator's own after it passed the rules).
 */
import * as path from "node:path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { AppSettings, BuildImageConfig } from "../src/config/schema";
import { BASE_DIGEST_ARG } from "../src/hardening/dockerfile";
import { prepareBuild, type PreparedBuild } from "../src/image/buildContext";

/**
 * A build path as the docker provider resolves it, relative to the directory Pulumi runs the program
 * and its providers in (dist/, Pulumi.yaml's `main`): the state holds no absolute path of the
 * checkout, so a moved checkout neither rebuilds the image nor replaces a container for its path alone.
 */
export function buildPath(p: string): string {
  return path.relative(process.cwd(), p) || ".";
}

export interface HardenedImageArgs {
  image: BuildImageConfig;
  app: AppSettings;
  /** the Pulumi project directory; appSource is relative to it */
  projectDir: string;
  /** where the build context is assembled (outside the app source) */
  workDir: string;
  /** push to this registry (target: swarm): the image is then known by its repository digest, registry/name@sha256:… */
  registry?: { address: string; username?: string; password?: pulumi.Input<string> };
  /** the digest of the base on the engine now (label io.hardened-fleet.base-digest; a new one rebuilds the image) */
  baseDigest?: pulumi.Input<string>;
}

export class HardenedImage extends pulumi.ComponentResource {
  /** the local image ID (`sha256:...`), or with a registry its repository digest: what customers run and what a promotion carries */
  readonly imageRef: pulumi.Output<string>;
  /** `name:<version>-<revision>` */
  readonly imageName: pulumi.Output<string>;
  readonly version: string;
  readonly revision: string;
  readonly dockerfileText: string;

  constructor(name: string, args: HardenedImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hardened-fleet:image:HardenedImage", name, {}, opts);
    // plain files and rule checks first: a bad Dockerfile stops here, before any resource exists
    const build: PreparedBuild = prepareBuild(args);
    this.version = build.version;
    this.revision = build.revision;
    this.dockerfileText = build.dockerfileText;
    // an operator's Dockerfile: what is recommended but not required (a shell kept without a stated reason)
    for (const a of build.advice) pulumi.log.warn(`${args.image.dockerfile}${a.line ? `:${a.line}` : ""}: ${a.rule}: ${a.message} (${a.fix})`, this);

    const { registry } = args;
    const image = new docker.Image(`${name}-image`, {
      imageName: registry ? `${registry.address}/${build.tag}` : build.tag,
      skipPush: !registry,
      ...(registry ? { registry: { server: registry.address, username: registry.username, password: registry.password } } : {}),
      buildOnPreview: false,
      build: {
        context: buildPath(build.context),
        dockerfile: buildPath(build.dockerfile),
        platform: "linux/amd64",
        // the official provider's classic builder (BuilderV1) leaves every intermediate container behind
        builderVersion: "BuilderBuildKit",
        ...(args.baseDigest ? { args: { [BASE_DIGEST_ARG]: args.baseDigest } } : {}),
      },
    }, { parent: this });

    // pushed, repoDigest is registry/name@sha256:… (what every node pulls); with skipPush the
    // official provider sets it to the local image ID (`sha256:...`)
    this.imageRef = image.repoDigest;
    this.imageName = image.imageName;
    this.registerOutputs({
      imageRef: this.imageRef,
      imageName: this.imageName,
      version: this.version,
      revision: this.revision,
    });
  }
}
