/**
 * The pieces an environment's own infrastructure containers share (the edge proxy, the log collector):
 * a network of their own without inter-container traffic, a volume kept when they are replaced or
 * their stack destroyed, and an image built from their assets on a base the set-up made. Created
 * under the component that asks, with the names it gives (so each keeps its resources' URNs).
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as docker from "@pulumi/docker";
import type * as pulumi from "@pulumi/pulumi";
import type { ContainerSpec } from "../src/hardening/serviceSpec";
import { REPLACE_ON_CHANGES, toContainerArgs } from "./containerArgs";
import { ContainerGate, DynamicProvider } from "./containerGate";
import { buildPath } from "./hardenedImage";

type Labels = { label: string; value: string }[];

/** A short hash of an infrastructure image's inputs (the asset files of `dir` and the base), for its tag. */
function assetsVersion(dir: string, base: string): string {
  const hash = crypto.createHash("sha256").update(base);
  for (const file of fs.readdirSync(dir).sort()) hash.update(file).update(fs.readFileSync(path.join(dir, file)));
  return hash.digest("hex").slice(0, 12);
}

export function ownNetwork(parent: pulumi.Resource, name: string, networkName: string, labels: Labels): docker.Network {
  return new docker.Network(`${name}-net`, {
    name: networkName,
    driver: "bridge",
    options: { "com.docker.network.bridge.enable_icc": "false" },
    labels,
  }, { parent, ignoreChanges: ["labels"] });
}

export function keptVolume(parent: pulumi.Resource, name: string, volumeName: string, labels: Labels): docker.Volume {
  return new docker.Volume(`${name}-data`, { name: volumeName, labels }, { parent, ignoreChanges: ["labels"], retainOnDelete: true });
}

/** `repository:<hash of the assets and the base>`, built from `assets` (its Dockerfile takes the base as BASE). */
export function assetsImage(parent: pulumi.Resource, name: string, image: { repository: string; assets: string; base: string }): docker.Image {
  return new docker.Image(`${name}-image`, {
    imageName: `${image.repository}:${assetsVersion(image.assets, image.base)}`,
    skipPush: true,
    buildOnPreview: false,
    build: {
      // relative paths: no checkout's location in the state (components/hardenedImage.ts, buildPath)
      context: buildPath(image.assets),
      dockerfile: buildPath(path.join(image.assets, "Dockerfile")),
      args: { BASE: image.base },
      platform: "linux/amd64",
      builderVersion: "BuilderBuildKit",
    },
  }, { parent });
}

/**
 * The container of `spec` on its own network and volume, replaced old-first (a fixed name, and for the
 * proxy fixed host ports), and its gate (PIDs limit, healthy, audited) before anything depends on it.
 */
export function gatedContainer(parent: pulumi.Resource, name: string, parts: {
  spec: ContainerSpec; image: docker.Image; network: docker.Network; volume: docker.Volume; dockerHost: string;
}): { container: docker.Container; gate: ContainerGate; dynamicProvider: DynamicProvider } {
  const { spec, image, network, volume, dockerHost } = parts;
  const dynamicProvider = new DynamicProvider(`${name}-dynamic`, { parent, dependsOn: [volume] });
  const container = new docker.Container(`${name}-container`, {
    ...toContainerArgs(spec),
    image: image.repoDigest,
    networkMode: network.name,
    networksAdvanced: [{ name: network.name }],
    volumes: [{ volumeName: volume.name, containerPath: spec.data.target }],
  }, { parent, replaceOnChanges: REPLACE_ON_CHANGES, deleteBeforeReplace: true });
  const gate = new ContainerGate(`${name}-gate`, {
    containerId: container.id, pidsLimit: spec.pidsLimit, healthTimeoutSeconds: spec.healthTimeoutSeconds, dockerHost,
  }, { parent, provider: dynamicProvider });
  return { container, gate, dynamicProvider };
}
