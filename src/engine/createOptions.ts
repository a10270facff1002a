/** Maps a ServiceSpec onto Docker Engine API create options: the same settings the component deploys. */
import type Dockerode from "dockerode";
import type { ServiceSpec } from "../hardening/serviceSpec";

const NANO = 1e9;

export function toEngineCreateOptions(spec: ServiceSpec, secrets: Record<string, string>): Dockerode.ContainerCreateOptions {
  const hc = spec.healthcheck;
  const portKey = `${spec.port.container}/tcp`;
  return {
    name: spec.containerName,
    Hostname: spec.hostname,
    Image: spec.image,
    User: spec.user,
    Env: Object.entries({ ...spec.env, ...secrets }).map(([k, v]) => `${k}=${v}`),
    Labels: spec.labels,
    ExposedPorts: { [portKey]: {} },
    Healthcheck: {
      Test: hc.test,
      Interval: hc.intervalSeconds * NANO,
      Timeout: hc.timeoutSeconds * NANO,
      Retries: hc.retries,
      StartPeriod: hc.startPeriodSeconds * NANO,
    },
    HostConfig: {
      CapDrop: spec.capDrop,
      CapAdd: spec.capAdd,
      SecurityOpt: spec.securityOpt,
      ReadonlyRootfs: spec.readOnlyRootfs,
      Tmpfs: spec.tmpfs,
      Memory: spec.memoryBytes,
      MemorySwap: spec.memorySwapBytes,
      NanoCpus: Math.round(spec.cpus * NANO),
      PidsLimit: spec.pidsLimit,
      Ulimits: spec.ulimits.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })),
      RestartPolicy: { Name: spec.restart.policy, MaximumRetryCount: spec.restart.maxRetries },
      LogConfig: { Type: spec.log.driver, Config: spec.log.opts },
      PortBindings: { [portKey]: [{ HostIp: spec.port.hostIp, HostPort: String(spec.port.hostPort) }] },
      NetworkMode: spec.networkName,
      Mounts: [{ Type: "volume", Source: spec.data.volume, Target: spec.data.target }],
      Privileged: false,
    },
    NetworkingConfig: { EndpointsConfig: { [spec.networkName]: {} } },
  };
}
