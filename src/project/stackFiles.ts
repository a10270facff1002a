/**
 * The project's stack config files (Pulumi.<stack>.yaml), read and written without Pulumi: the
 * environments' (staging, prod), and the customers' (Pulumi.<env>-<customer>.yaml), which provision writes.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Document, parse } from "yaml";
import { writeFileDurable } from "../config/durableWrite";
import { CUSTOMER_KEY, DOCKER_HOST_KEY, ENVIRONMENT_KEY, ROLE_KEY, parseEnvironmentConfig } from "../config/load";
import type { CustomerConfig, EnvironmentConfig } from "../config/schema";
import { customerStackName } from "../config/targets";

export function stackFile(projectDir: string, stack: string): string {
  return path.join(projectDir, `Pulumi.${stack}.yaml`);
}

/** The `config:` map of a stack's file; an error naming the file when there is none. */
export function readStackConfig(projectDir: string, stack: string): Record<string, unknown> {
  const file = stackFile(projectDir, stack);
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist: stack '${stack}' has no config file`);
  const doc = parse(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null;
  return doc?.config ?? {};
}

export function readEnvironmentConfig(projectDir: string, stack: string): EnvironmentConfig {
  return parseEnvironmentConfig(readStackConfig(projectDir, stack)[ENVIRONMENT_KEY]);
}

/** `docker:host` of a stack's config map, if it sets one. Pure. */
export function dockerHostOf(config: Record<string, unknown>): string | undefined {
  const host = config[DOCKER_HOST_KEY];
  return typeof host === "string" && host !== "" ? host : undefined;
}

/** An environment's file read once: its parsed config and the engine it names (`docker:host`), if any. */
export function readEnvironmentFile(projectDir: string, environment: string): { config: EnvironmentConfig; dockerHost?: string } {
  const raw = readStackConfig(projectDir, environment);
  return { config: parseEnvironmentConfig(raw[ENVIRONMENT_KEY]), dockerHost: dockerHostOf(raw) };
}

export function readCustomerConfig(projectDir: string, stack: string): CustomerConfig | undefined {
  const file = stackFile(projectDir, stack);
  if (!fs.existsSync(file)) return undefined;
  const config = (parse(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null)?.config;
  return config?.[CUSTOMER_KEY] as CustomerConfig | undefined;
}

/**
 * The customer's stored config, or (its stack file gone: a deprovisioned customer, whose backups
 * remain) the bare identity with no plan and no node: enough to find its volume and repository.
 */
export function customerConfigOrBare(projectDir: string, target: { stack: string; customer: string; environment: string }): CustomerConfig {
  return readCustomerConfig(projectDir, target.stack) ?? { id: target.customer, environment: target.environment, plan: "" };
}

/** The project's environments: stack files Pulumi.<name>.yaml whose role is environment (staging, prod, ...). */
export function environmentNames(projectDir: string): string[] {
  return fs.readdirSync(projectDir)
    .map((f) => /^Pulumi\.([a-z][a-z0-9]*)\.yaml$/.exec(f)?.[1])
    .filter((name): name is string => name !== undefined &&
      (parse(fs.readFileSync(stackFile(projectDir, name), "utf8")) as { config?: Record<string, unknown> } | null)?.config?.[ROLE_KEY] === "environment")
    .sort();
}

/** Customers whose stack files exist for an environment, with their config. */
export function customerConfigs(projectDir: string, environment: string): CustomerConfig[] {
  const prefix = `Pulumi.${environment}-`;
  return fs.readdirSync(projectDir)
    .filter((f) => f.startsWith(prefix) && f.endsWith(".yaml"))
    .map((f) => (parse(fs.readFileSync(path.join(projectDir, f), "utf8")) as { config?: Record<string, unknown> } | null)?.config?.[CUSTOMER_KEY])
    .filter((c): c is CustomerConfig => typeof c === "object" && c !== null && (c as CustomerConfig).environment === environment)
    .sort((a, b) => a.id.localeCompare(b.id));
}

/** Writes a file so that a reader (or a crash, or a power cut) sees the old content or the new, never half of it. */
export function writeFileAtomic(file: string, text: string): void {
  writeFileDurable(file, text);
}

/**
 * Writes the customer's config into its stack file, keeping anything else there (e.g. encryptionsalt).
 * The environment's engine (docker:host) goes with it, so the customer deploys where its environment does.
 */
export function writeCustomerStackFile(projectDir: string, customer: CustomerConfig, dockerHost?: string): string {
  const file = stackFile(projectDir, customerStackName(customer.environment, customer.id));
  const doc = fs.existsSync(file) ? new Document(parse(fs.readFileSync(file, "utf8")) ?? {}) : new Document({});
  doc.setIn(["config", ROLE_KEY], "customer");
  // no port: customers publish none since the edge proxy (an old file's port goes with this rewrite)
  const value: Record<string, unknown> = { id: customer.id, environment: customer.environment, plan: customer.plan };
  if (customer.image) value.image = customer.image;
  if (customer.node) value.node = customer.node;
  doc.setIn(["config", CUSTOMER_KEY], value);
  if (dockerHost) doc.setIn(["config", DOCKER_HOST_KEY], dockerHost);
  else doc.deleteIn(["config", DOCKER_HOST_KEY]);
  const text = `# Customer stack: ${customer.id} in ${customer.environment}. Written by 'fleet provision'.\n${doc.toString()}`;
  if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== text) writeFileAtomic(file, text);
  return file;
}
