/** Customer stack config files (Pulumi.<env>-<customer>.yaml): written by provision, read by list. */
import * as fs from "node:fs";
import * as path from "node:path";
import { Document, parse } from "yaml";
import { CUSTOMER_KEY, ROLE_KEY } from "../config/load";
import type { CustomerConfig } from "../config/schema";
import { customerStackName } from "../hardening/names";

export function readCustomerConfig(projectDir: string, stack: string): CustomerConfig | undefined {
  const file = stackFile(projectDir, stack);
  if (!fs.existsSync(file)) return undefined;
  const config = (parse(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null)?.config;
  return config?.[CUSTOMER_KEY] as CustomerConfig | undefined;
}

export function stackFile(projectDir: string, stack: string): string {
  return path.join(projectDir, `Pulumi.${stack}.yaml`);
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

/** The lowest port of the range no other customer of the environment uses. */
export function nextFreePort(range: { from: number; to: number }, used: number[]): number {
  const taken = new Set(used);
  for (let p = range.from; p <= range.to; p++) if (!taken.has(p)) return p;
  throw new Error(`every port of ${range.from}-${range.to} is taken: widen publish.portRange`);
}

/** Writes the customer's config into its stack file, keeping anything else there (e.g. encryptionsalt). */
export function writeCustomerStackFile(projectDir: string, customer: CustomerConfig): string {
  const file = stackFile(projectDir, customerStackName(customer.environment, customer.id));
  const doc = fs.existsSync(file) ? new Document(parse(fs.readFileSync(file, "utf8")) ?? {}) : new Document({});
  doc.setIn(["config", ROLE_KEY], "customer");
  const value: Record<string, unknown> = { id: customer.id, environment: customer.environment, plan: customer.plan, port: customer.port };
  if (customer.image) value.image = customer.image;
  doc.setIn(["config", CUSTOMER_KEY], value);
  const text = `# Customer stack: ${customer.id} in ${customer.environment}. Written by 'fleet provision'.\n${doc.toString()}`;
  if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== text) fs.writeFileSync(file, text);
  return file;
}
