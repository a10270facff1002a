/**
 * target: swarm — a customer's hardened container (ServiceSpec) as a Docker Swarm service spec, the
 * body of the Engine API's POST /services/create. Pure: tested as a value, deployed by
 * components/swarmService.ts, and the one place where a service differs from a container:
 *
 *  - one replica, pinned by a placement constraint to the node its data volume lives on;
 *  - the secret key is a Swarm secret, a file in /run/secrets readable by 1000 only, not an environment variable;
 *  - `dnsrr`: the edge proxy finds the task by the service's name (no virtual IP: no IPVS needed);
 *  - updates start the new task first, watch its healthcheck for `monitorSeconds`, and roll back on failure;
 *  - Swarm restarts a task on any exit (with a delay), and brings it back on its node when the node returns;
 *  - no-new-privileges cannot be set per service in this Engine API: every node's daemon sets it
 *    (`no-new-privileges: true`), and `fleet audit` checks it in every task's process.
 */
import { engineHealthcheck } from "../engine/createOptions";
import type { SwarmEnvironmentConfig } from "../config/schema";
import { LABEL_SANDBOX } from "../hardening/sandbox";
import type { ServiceSpec } from "../hardening/serviceSpec";

/** The node label that pins a customer to a node (`docker node update --label-add hardened-fleet.node=<name>`). */
export const NODE_LABEL = "hardened-fleet.node";
/** Where Swarm mounts the app's secret key; the app reads APP_SECRET_KEY_FILE. */
export const SECRET_KEY_FILE = "/run/secrets/app_secret_key";

const NS = 1_000_000_000;

export interface SwarmPlacement {
  /** swarm.nodes[].name: the value of the node label */
  node: string;
  /** the Swarm secret holding the app's secret key */
  secret: { id: string; name: string };
  /** seconds a new task must stay healthy before the update counts as done */
  monitorSeconds: number;
  /** the overlay's name when it is not spec.networkName (an encrypted overlay: overlayNetworkName) */
  network?: string;
}

/** Added to the name of an encrypted overlay: a network's options cannot change, so an existing customer moves to a new one beside its old one. */
export const ENCRYPTED_OVERLAY_SUFFIX = "-ipsec";

/** The customer's overlay: hf-<env>-<customer>-edge, with ENCRYPTED_OVERLAY_SUFFIX when encrypted. Pure. */
export function overlayNetworkName(networkName: string, encrypted: boolean): string {
  return encrypted ? `${networkName}${ENCRYPTED_OVERLAY_SUFFIX}` : networkName;
}

/** The service's name: the customer's container prefix, hf-<environment>-<customer> (its DNS name on the network too). */
export function swarmServiceName(spec: ServiceSpec): string {
  return spec.containerPrefix;
}

/** swarm.nodes as name -> engine address. Pure. */
export function swarmNodeHosts(env: Pick<SwarmEnvironmentConfig, "swarm">): Record<string, string> {
  return Object.fromEntries(env.swarm.nodes.map((n) => [n.name, n.host]));
}

/** The node label of a sandbox node (`docker node update --label-add hardened-fleet.sandbox=gvisor`): its engine's default runtime is runsc. */
export const SANDBOX_NODE_LABEL = "hardened-fleet.sandbox";

export function placementConstraint(node: string): string {
  return `node.labels.${NODE_LABEL}==${node}`;
}

/**
 * A service's placement constraints: its node, and for a sandboxed plan a sandbox node too (a
 * Swarm service has no runtime of its own: it runs under its node's default, so a node the config
 * calls a sandbox node but whose label says otherwise gets no task, rather than one outside a sandbox).
 */
export function placementConstraints(spec: Pick<ServiceSpec, "labels">, node: string): string[] {
  const sandbox = spec.labels[LABEL_SANDBOX];
  return sandbox === undefined ? [placementConstraint(node)] : [placementConstraint(node), `node.labels.${SANDBOX_NODE_LABEL}==${sandbox}`];
}

/** Mount options of a tmpfs, as Swarm takes them (the engine adds noexec,nosuid,nodev to every tmpfs). */
function tmpfsMount(target: string, options: string) {
  const size = /size=(\d+)m/.exec(options);
  const mode = /mode=(\d+)/.exec(options);
  return {
    Type: "tmpfs", Target: target,
    TmpfsOptions: { SizeBytes: size ? Number(size[1]) * 1024 * 1024 : 64 * 1024 * 1024, Mode: mode ? parseInt(mode[1]!, 8) : 0o1777 },
  };
}

export function toSwarmServiceSpec(spec: ServiceSpec, placement: SwarmPlacement): Record<string, unknown> {
  const monitor = placement.monitorSeconds * NS;
  const update = { Parallelism: 1, Delay: 0, Monitor: monitor, MaxFailureRatio: 0, Order: "start-first" };
  return {
    Name: swarmServiceName(spec),
    Labels: spec.labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: spec.image,
        Labels: spec.labels,
        Hostname: spec.hostname,
        User: spec.user,
        Env: [...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`), `APP_SECRET_KEY_FILE=${SECRET_KEY_FILE}`],
        ReadOnly: spec.readOnlyRootfs,
        CapabilityDrop: spec.capDrop,
        CapabilityAdd: spec.capAdd,
        Ulimits: spec.ulimits.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })),
        Mounts: [
          // created on its node by the engine, from the image's directory (owned by 1000); Swarm never removes it
          { Type: "volume", Source: spec.data.volume, Target: spec.data.target,
            VolumeOptions: { Labels: spec.identityLabels } },
          ...Object.entries(spec.tmpfs).map(([target, options]) => tmpfsMount(target, options)),
        ],
        Healthcheck: engineHealthcheck(spec.healthcheck),
        Secrets: [{
          File: { Name: SECRET_KEY_FILE.slice(SECRET_KEY_FILE.lastIndexOf("/") + 1), UID: "1000", GID: "1000", Mode: 0o400 },
          SecretID: placement.secret.id, SecretName: placement.secret.name,
        }],
        StopGracePeriod: 20 * NS,
      },
      Resources: { Limits: { NanoCPUs: Math.round(spec.cpus * NS), MemoryBytes: spec.memoryBytes, Pids: spec.pidsLimit } },
      RestartPolicy: { Condition: "any", Delay: 5 * NS, MaxAttempts: 0 },
      Placement: { Constraints: placementConstraints(spec, placement.node) },
      Networks: [{ Target: placement.network ?? spec.networkName }],
      LogDriver: { Name: spec.log.driver, Options: spec.log.opts },
    },
    Mode: { Replicated: { Replicas: 1 } },
    UpdateConfig: { ...update, FailureAction: "rollback" },
    RollbackConfig: { ...update, FailureAction: "pause" },
    EndpointSpec: { Mode: "dnsrr" },
  };
}
