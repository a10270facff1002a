/**
 * The floor a fleet provisioning is compared with: the same hardened container made by hand with the
 * docker CLI (`docker network create`, `docker volume create`, `docker run` with every hardening
 * flag of the customer's ServiceSpec), then polled until healthy (through docker inspect: like a
 * container fleet deploys, it publishes no host port; its traffic would come through the edge proxy).
 * Used by bench/fleet.ts only.
 */
import { containerEnv, type ServiceSpec } from "../src/hardening/serviceSpec";

/**
 * `docker network create` arguments for the customer's own network, as HardenedService makes it: a
 * plain bridge (the environment's edge proxy joins it to reach the app, so inter-container traffic
 * stays on). Pure.
 */
export function networkCreateArgs(spec: ServiceSpec): string[] {
  const labels = Object.entries(spec.identityLabels).flatMap(([k, v]) => ["--label", `${k}=${v}`]);
  return ["network", "create", "--driver", "bridge", ...labels, spec.networkName];
}

/** `docker volume create` arguments for the data volume. Pure. */
export function volumeCreateArgs(spec: ServiceSpec): string[] {
  const labels = Object.entries(spec.identityLabels).flatMap(([k, v]) => ["--label", `${k}=${v}`]);
  return ["volume", "create", ...labels, spec.dataVolumeName];
}

/**
 * `docker run -d` with every hardening setting of the spec (the healthcheck as a shell command), the
 * secrets volume mounted read-only (the key file is written before, as fleet writes it), and
 * `--publish` only for what the spec publishes: nothing, for a customer. Pure.
 */
export function dockerRunArgs(spec: ServiceSpec): string[] {
  const secrets = spec.secretFile ? ["--mount", `type=volume,source=${spec.secretFile.volume},target=${spec.secretFile.dir},readonly`] : [];
  const hc = spec.healthcheck;
  const health = hc.test[0] === "CMD-SHELL" ? hc.test[1]! : hc.test.slice(1).join(" ");
  const pairs = (flag: string, entries: [string, string][]) => entries.flatMap(([k, v]) => [flag, `${k}=${v}`]);
  return [
    "run", "-d", "--name", spec.containerName, "--hostname", spec.hostname, "--user", spec.user,
    ...pairs("--env", Object.entries(containerEnv(spec))),
    ...pairs("--label", Object.entries(spec.labels)),
    "--cap-drop", "ALL", ...spec.capAdd.flatMap((c) => ["--cap-add", c]),
    ...spec.securityOpt.flatMap((o) => ["--security-opt", o]),
    ...(spec.readOnlyRootfs ? ["--read-only"] : []),
    ...Object.entries(spec.tmpfs).flatMap(([p, o]) => ["--tmpfs", `${p}:${o}`]),
    "--memory", String(spec.memoryBytes), "--memory-swap", String(spec.memorySwapBytes),
    "--cpus", String(spec.cpus), "--pids-limit", String(spec.pidsLimit),
    ...spec.ulimits.flatMap((u) => ["--ulimit", `${u.name}=${u.soft}:${u.hard}`]),
    "--restart", `${spec.restart.policy}:${spec.restart.maxRetries}`,
    "--log-driver", spec.log.driver, ...Object.entries(spec.log.opts).flatMap(([k, v]) => ["--log-opt", `${k}=${v}`]),
    "--health-cmd", health, "--health-interval", `${hc.intervalSeconds}s`, "--health-timeout", `${hc.timeoutSeconds}s`,
    "--health-retries", String(hc.retries), "--health-start-period", `${hc.startPeriodSeconds}s`,
    ...spec.publish.flatMap((p) => ["--publish", `${p.hostIp}:${p.hostPort}:${p.containerPort}`]),
    "--network", spec.networkName,
    "--mount", `type=volume,source=${spec.data.volume},target=${spec.data.target}`, ...secrets,
    spec.image,
  ];
}
