/**
 * Maps a ContainerSpec (a customer's app or the edge proxy) onto @pulumi/docker Container inputs (everything but the secrets and Pulumi wiring).
 * It lives with the components because it speaks the docker provider's types; src/hardening stays free of Pulumi.
 */
import type * as docker from "@pulumi/docker";
import { MIB, containerEnv, type ContainerSpec } from "../src/hardening/serviceSpec";

/** Container inputs the docker provider cannot change in place: a change must replace the container. */
export const REPLACE_ON_CHANGES = ["healthcheck", "tmpfs", "capabilities", "securityOpts", "ulimits", "sysctls", "logOpts"];

export type PlainContainerArgs = Omit<docker.ContainerArgs, "envs"> & { envs: string[] };

export function toContainerArgs(spec: ContainerSpec): PlainContainerArgs {
  const hc = spec.healthcheck;
  return {
    name: spec.containerName,
    hostname: spec.hostname,
    image: spec.image,
    user: spec.user,
    capabilities: { drops: spec.capDrop, adds: spec.capAdd },
    securityOpts: spec.securityOpt,
    cgroupnsMode: spec.cgroupns,
    readOnly: spec.readOnlyRootfs,
    tmpfs: spec.tmpfs,
    memory: spec.memoryBytes / MIB,
    memorySwap: spec.memorySwapBytes / MIB,
    cpus: String(spec.cpus),
    ulimits: spec.ulimits.map((u) => ({ name: u.name, soft: u.soft, hard: u.hard })),
    restart: spec.restart.policy,
    maxRetryCount: spec.restart.maxRetries,
    healthcheck: {
      tests: hc.test,
      interval: `${hc.intervalSeconds}s`,
      timeout: `${hc.timeoutSeconds}s`,
      retries: hc.retries,
      startPeriod: `${hc.startPeriodSeconds}s`,
    },
    // the wait for healthy is ContainerGate's (ten polls a second, the provider's one): see containerGate.ts
    wait: false,
    ...(spec.sysctls ? { sysctls: spec.sysctls } : {}),
    logDriver: spec.log.driver,
    logOpts: spec.log.opts,
    // a customer publishes nothing (its traffic comes through the edge proxy); the proxy publishes its two
    ports: spec.publish.map((p) => ({ internal: p.containerPort, external: p.hostPort, ip: p.hostIp, protocol: "tcp" })),
    networkMode: spec.networkName,
    networksAdvanced: [{ name: spec.networkName }],
    volumes: [
      { volumeName: spec.data.volume, containerPath: spec.data.target },
      ...(spec.secretFile ? [{ volumeName: spec.secretFile.volume, containerPath: spec.secretFile.dir, readOnly: true }] : []),
    ],
    privileged: false,
    // a sandboxed plan's runtime (runsc); the engine's default (runc) otherwise
    ...(spec.runtime ? { runtime: spec.runtime } : {}),
    envs: Object.entries(containerEnv(spec)).map(([k, v]) => `${k}=${v}`),
    labels: Object.entries(spec.labels).map(([label, value]) => ({ label, value })),
    // a routine teardown keeps customer data: never remove the volumes with the container
    removeVolumes: false,
    mustRun: true,
    destroyGraceSeconds: 20,
  };
}
