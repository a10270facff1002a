/**
 * What a customer stack's program needs from its target (src/program/customer.ts asks, never tests
 * which target it is): the service component to create, the name the edge proxy sends traffic to,
 * the customer network names the edge proxy joins, and what the stack publishes besides the common
 * outputs. One implementation per target: docker/program.ts, swarm/program.ts; programFor.ts picks one.
 */
import type { HardenedService, ServiceSettings } from "../../components/hardenedService";
import type { CustomerConfig, EnvironmentConfig } from "../config/schema";
import type { ServiceIdentity, ServiceSpec } from "../hardening/serviceSpec";
import type { RegistryAuth } from "../swarm/deploy";

/** What the customer program knows once its environment stack's published settings are read and checked. */
export interface SettledCustomer {
  env: EnvironmentConfig;
  customer: CustomerConfig;
  /** the settings every target's service takes */
  service: ServiceSettings;
  /** the registry account the environment stack published (a secret output there), if any */
  registryAuth?: RegistryAuth;
}

/** The environment stack's output `logs`: the collectors' container name and addresses (one host: `address`; a swarm: per node). */
export interface PublishedLogs {
  container: string;
  address?: string;
  nodes?: Record<string, string>;
}

export interface CustomerServiceRequest {
  identity: ServiceIdentity;
  /** the rest, once read; a rejection fails the deployment with its error */
  settled: Promise<SettledCustomer>;
  /** the environment's config known now: the project's stack file, else the published one (already read) */
  environment: EnvironmentConfig;
  /** the engine the docker provider deploys to (docker:host or DOCKER_HOST) */
  dockerHost: string;
}

export interface CustomerProgram {
  /**
   * The customer's service component, named `name`. It is created at once (its network needs only
   * the identity) while the settings may still be on their way.
   */
  createService(name: string, request: CustomerServiceRequest): HardenedService;
  /** The name the customer's route in the edge proxy sends traffic to: the container of `spec`, or its service. */
  edgeUpstream(spec: ServiceSpec): string;
  /**
   * The other endings of a customer network's name the edge proxy joins, given the plain one
   * (components/edgeProxy.ts, customerNetworkSuffix).
   */
  edgeAlsoSuffixes(networkSuffix: string): string[];
  /**
   * Where the environment stack runs log collectors (components/logCollector.ts): the engine its
   * customers run on (`dockerHost`), or each node's. Published as the stack output `logs`.
   */
  logCollectors(env: EnvironmentConfig, dockerHost: string): { node?: string; host: string; runtime?: string }[];
  /** The collector address a customer's lines go to (its node's on a swarm); none: json-file on its engine. */
  logAddress(logs: PublishedLogs | undefined, customer: CustomerConfig): string | undefined;
  /** What the customer stack publishes besides the outputs every customer stack has. */
  stackOutputs(customer: CustomerConfig): Record<string, unknown>;
}
