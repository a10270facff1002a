/**
 * Everything that differs between target: docker (one host, a container per customer) and target:
 * swarm (a Swarm service per customer, pinned to a node), on the operations side. One implementation
 * per target (docker/target.ts, swarm/target.ts); `deployTargetFor` (index.ts) picks it, and callers
 * ask it rather than test which target they have. The Pulumi program's side (the service component,
 * the name the edge proxy sends a customer's requests to) is targets/*\/program.ts.
 */
import type Dockerode from "dockerode";
import type { AuditFilter, ContainerAudit } from "../audit/audit";
import type { CustomerConfig, EnvironmentConfig, Sandbox, TargetKind } from "../config/schema";
import type { Log } from "../pulumi/progress";

export type { TargetKind } from "../config/schema";

/** One engine of the environment: the host's (node undefined), or a swarm node's. */
export interface TargetEngine {
  node?: string;
  engine: Dockerode;
}

/** Where `fleet logs` reads a customer's lines (src/fleet/logs.ts). */
export interface LogSource {
  /**
   * The environment's log collectors that may hold them (src/logs/collector.ts): the host's, or every
   * node's on a swarm (a customer that moved left lines on the node it left)
   */
  collectors: TargetEngine[];
  /** their container's name, the same on every engine */
  collector: string;
  customer: string;
  /** where the lines are while no collector runs (an environment stack from before them): the current container, or the service */
  fallback: { kind: "container" | "service"; engine: Dockerode; name: string };
}

/** A customer moved between nodes: the customer as it is now, and how fleet deploys it (fleet/move.ts). */
export interface NodeMove {
  /** provisioned and deployed, with its node */
  customer: CustomerConfig;
  to: string;
  /** the plan it runs on at `to` (its own, or a new one: between a sandboxed plan and not, the node changes with it) */
  plan: string;
  /** the image it runs: the one-shot containers that copy and check its data use it */
  image: string;
  /** where the archive the data goes through is kept */
  backupDir: string;
  /** deploys the customer as given (writes its stack file, then `pulumi up`) */
  deploy(customer: CustomerConfig): Promise<void>;
  /** writes the customer's stack file back as it was */
  restoreConfig(): void;
}

export interface MoveResult {
  customer: string;
  from: string;
  to: string;
  /** the archive the data went through; it stays, as a backup */
  archive: string;
  files: number;
}

export interface ContainerStatus {
  /** healthy (on a swarm: `healthy on <node>`), its state when it is not running, or why there is none */
  health: string;
  /** what it runs under now (runc, or runsc for a sandboxed plan) as its engine reports it; "-" when none runs */
  runtime: string;
}

export interface DeployTarget {
  readonly kind: TargetKind;
  readonly config: EnvironmentConfig;

  /**
   * The node a customer goes to: the one it has, else the node its data is on, else the least
   * loaded one among `customers`; undefined on one host. Pure.
   */
  placement(current: CustomerConfig | undefined, customers: CustomerConfig[], dataHome?: string, sandbox?: Sandbox): string | undefined;
  /** For a customer without a node: the node its data volume is on already (provisioned again), if any; undefined on one host. */
  findDataHome(customer: string, image: string): Promise<string | undefined>;
  /** The engine a customer's data volume is on. */
  dataEngine(customer: CustomerConfig | undefined): Dockerode;
  /** Every engine of the environment, each scanned by the audit and by a look for a customer's volume. */
  engines(): TargetEngine[];
  /** The engines that have `volume` now (on a swarm every node is asked: the customer's file may name another, or be gone). */
  volumeHolders(volume: string, customer: CustomerConfig | undefined): Promise<TargetEngine[]>;
  /** Makes `image` available on that engine for a one-shot container over customer data (a swarm node pulls it). */
  prepareOneShot(engine: Dockerode, image: string): Promise<void>;

  /**
   * A customer's container as `fleet list` shows it, from one look at its engine; `container` is the
   * one its last deployment made (on a swarm: the service).
   */
  status(container: string): Promise<ContainerStatus>;
  /** What a rollout waits on: healthy and audit-clean, or the reason it is not. */
  gate(container: string): Promise<string | undefined>;
  /** `fleet audit` of this environment: what runs on every engine, each with the checks of its target. */
  audit(filter: AuditFilter): Promise<ContainerAudit[]>;

  /** Where the lines of `customer` are; `container` is the one its last deployment made (on a swarm: the service). */
  logSource(customer: string, container: string): LogSource;

  /**
   * Refuses, before anything is created, a customer of plan `plan` (sandbox `sandbox`) on `node` (one
   * host: the host) when that engine would not run it as the plan says: a sandbox runtime it does not
   * have; on a swarm, a node whose default runtime does not fit its sandbox mark (a service runs
   * under its node's default), or a node that does not answer.
   */
  checkRuntime(plan: string, sandbox: Sandbox, node: string | undefined): Promise<void>;
  /** Refuses a move to `to` that cannot be (one host: there is no other node), before anything is locked. */
  checkMove(to: string): void;
  /** Moves the customer and its data to another node, checked; on failure it runs where it was. */
  moveToNode(move: NodeMove, log: Log): Promise<MoveResult>;

  /**
   * Starts the customer's app again on the data it has now (after a restore replaced it): docker
   * restarts its container (the edge proxy retries meanwhile), swarm runs a forced rolling update of
   * its service. `container` is the one its last deployment made (on a swarm: the service).
   */
  restartCustomer(container: string): Promise<void>;
  /** The engine of node `node`, to restore a customer there after its own node was lost; one host refuses (checkMove). */
  nodeEngineFor(node: string): Dockerode;

  // Backups (src/fleet/backups.ts) run on dataEngine: the host, or the customer's node.
}
