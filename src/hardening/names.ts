/** Names of Docker objects and Pulumi stacks, derived from environment and customer ids (both DNS labels). */

export const NAME_PREFIX = "hf";

export interface CustomerNames {
  /**
   * Its containers are `<container>-<slot>`: every deployment of a changed spec starts a new one
   * beside the running one (serviceSpec.ts, containerSlot), so no two ever share a name.
   */
  container: string;
  /** its own network, shared with nothing but its environment's edge proxy */
  network: string;
  dataVolume: string;
  /** the app's secret key file, alone on a volume of its own: never customer data (no archive, no backup) */
  secretsVolume: string;
  hostname: string;
}

export function customerNames(environment: string, customerId: string): CustomerNames {
  const base = `${NAME_PREFIX}-${environment}-${customerId}`;
  return { container: base, network: `${base}-edge`, dataVolume: `${base}-data`, secretsVolume: `${base}-secrets`, hostname: customerId };
}

/** The network customers had before the edge proxy (no inter-container traffic, so no proxy could reach them). */
export function legacyCustomerNetwork(environment: string, customerId: string): string {
  return `${NAME_PREFIX}-${environment}-${customerId}-net`;
}

export interface EdgeNames {
  container: string;
  network: string;
  dataVolume: string;
}

/** The edge proxy of an environment; `name` is edge.name, an id no customer of the environment may take. */
export function edgeNames(environment: string, name: string): EdgeNames {
  const base = `${NAME_PREFIX}-${environment}-${name}`;
  return { container: base, network: `${base}-net`, dataVolume: `${base}-data` };
}

export interface LogCollectorNames {
  container: string;
  network: string;
  /** the customers' lines: kept when the collector is replaced or its stack destroyed */
  dataVolume: string;
}

/**
 * The log collector of an environment, named after its edge proxy (edge.name, an id no customer takes):
 * no customer's container (always `-<slot>`), volume (`-data`, `-secrets`) or network (`-edge`, `-net`) ends like these.
 */
export function logCollectorNames(environment: string, edgeName: string): LogCollectorNames {
  const base = `${NAME_PREFIX}-${environment}-${edgeName}-logs`;
  return { container: base, network: `${base}-lognet`, dataVolume: `${base}-store` };
}

/** Customer stacks are `<environment>-<customer>` (config/targets.ts, where stack names are parsed). */
export { customerStackName } from "../config/targets";

/** Labels that let the audit and the CLI find what hardened-fleet made. */
export const LABEL_MANAGED = "io.hardened-fleet.managed";
export const LABEL_ENVIRONMENT = "io.hardened-fleet.environment";
export const LABEL_CUSTOMER = "io.hardened-fleet.customer";
export const LABEL_PLAN = "io.hardened-fleet.plan";
export const LABEL_ROLE = "io.hardened-fleet.role";
export const LABEL_NONROOT_UID = "io.hardened-fleet.nonroot-uid";
export const LABEL_PROFILE = "io.hardened-fleet.profile";
export const LABEL_BASE = "io.hardened-fleet.base-image";
/** the digest of the base the image was built from (its registry manifest digest, or its image ID on the engine): `fleet bases` compares it with the newest */
export const LABEL_BASE_DIGEST = "io.hardened-fleet.base-digest";
export const LABEL_CAP_REASONS = "io.hardened-fleet.cap-add-reasons";
/** on an image: why its runtime keeps a shell (the audit's no-shell check passes it, naming the reason) */
export const LABEL_SHELL_REASON = "io.hardened-fleet.shell-reason";
/** values of LABEL_ROLE */
export const ROLE_CUSTOMER = "customer-service";
export const ROLE_EDGE = "edge-proxy";
/** an environment's log collector (src/logs/collector.ts) */
export const ROLE_LOGS = "log-collector";
/** the volume holding a customer's secret key file (components/secretFile.ts) */
export const ROLE_SECRETS = "customer-secrets";

/** Bumped when the hardening profile (what the components enforce) changes. */
export const HARDENING_PROFILE_VERSION = "1";
export const APP_UID = 1000;
export const APP_GID = 1000;
/** Where the app finds its secret key (target docker: a read-only volume; swarm: a Swarm secret), named by APP_SECRET_KEY_FILE. */
export const APP_SECRETS_DIR = "/run/secrets";
export const APP_SECRET_KEY_FILE = `${APP_SECRETS_DIR}/app_secret_key`;
