/** Maps a ContainerSpec onto Docker Engine API create options: the same settings the component deploys. */
import type Dockerode from "dockerode";
import { containerEnv, type ContainerSpec, type HealthcheckSpec } from "../hardening/serviceSpec";

const NANO = 1e9;

/** A healthcheck as the Engine API takes it (durations in nanoseconds), for containers and Swarm services alike. */
export function engineHealthcheck(hc: HealthcheckSpec) {
  return {
    Test: hc.test,
    Interval: hc.intervalSeconds * NANO,
    Timeout: hc.timeoutSeconds * NANO,
    Retries: hc.retries,
    StartPeriod: hc.startPeriodSeconds * NANO,
  };
}

export function toEngineCreateOptions(spec: ContainerSpec, secrets: Record<string, string>): Dockerode.ContainerCreateOptions {
  const hc = spec.healthcheck;
  const portKey = `${spec.port}/tcp`;
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of spec.publish) bindings[`${p.containerPort}/tcp`] = [{ HostIp: p.hostIp, HostPort: String(p.hostPort) }];
  // Engine API 1.41 has CgroupnsMode; @types/dockerode's HostConfig does not
  const cgroupns = { CgroupnsMode: spec.cgroupns };
  return {
    name: spec.containerName,
    Hostname: spec.hostname,
    Image: spec.image,
    User: spec.user,
    Env: Object.entries({ ...containerEnv(spec), ...secrets }).map(([k, v]) => `${k}=${v}`),
    Labels: spec.labels,
    ExposedPorts: { [portKey]: {} },
    Healthcheck: engineHealthcheck(hc),
    HostConfig: {
      CapDrop: spec.capDrop,
      CapAdd: spec.capAdd,
      SecurityOpt: spec.securityOpt,
      ...cgroupns,
      ReadonlyRootfs: spec.readOnlyRootfs,
      Tmpfs: spec.tmpfs,
      Memory: spec.memoryBytes,
      MemorySwap: spec.memorySwapBytes,
      NanoCpus: Math.round(spec.cpus * NANO),
      PidsLimit: spec.pidsLimit,
      Ulimits: spec.ulimits.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })),
      ...(spec.sysctls ? { Sysctls: spec.sysctls } : {}),
      RestartPolicy: { Name: spec.restart.policy, MaximumRetryCount: spec.restart.maxRetries },
      LogConfig: { Type: spec.log.driver, Config: spec.log.opts },
      PortBindings: bindings,
      NetworkMode: spec.networkName,
      Mounts: [
        { Type: "volume", Source: spec.data.volume, Target: spec.data.target },
        ...(spec.secretFile ? [{ Type: "volume" as const, Source: spec.secretFile.volume, Target: spec.secretFile.dir, ReadOnly: true }] : []),
      ],
      Privileged: false,
      ...(spec.runtime ? { Runtime: spec.runtime } : {}),
    },
    NetworkingConfig: { EndpointsConfig: { [spec.networkName]: {} } },
  };
}
