/**
 * Which Stripe customer (and subscription) owns each fleet customer, and what a payment event may
 * therefore do to it.
 *
 * A Checkout Session's client_reference_id comes from the payment link's URL, so anybody can name any
 * customer in it. A fleet customer is bound to the Stripe customer and subscription whose event
 * created it; later events act on it only when they come from that Stripe customer (and, for
 * subscription updates and deletions, from its current subscription). Anything else is refused and
 * changes nothing. The binding outlives a deprovision (the data volume is kept), so a stranger's
 * checkout cannot take over a cancelled customer's data; the same Stripe customer may resubscribe,
 * which binds the new subscription. An operator re-binds on purpose with `fleet bind`. What an event
 * may do given a binding is decided in src/webhooks/authorize.ts; this is the record.
 *
 * The store is its own SQLite file, <project>/.fleet/webhooks/bindings.db: it belongs to the project
 * (fleet list and fleet bind find it without --db) and outlives any one job queue.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync, type SQLOutputValue } from "node:sqlite";
import { ConfigError } from "../config/errors";

export interface Binding {
  environment: string;
  customer: string;
  /** cus_... */
  stripeCustomer: string;
  /** sub_... of the current subscription; null: any subscription of stripeCustomer (bound without one) */
  subscription: string | null;
  /** ISO time */
  boundAt: string;
  /** `event evt_...` or `operator` */
  boundBy: string;
}

/** The command that binds a customer to a Stripe customer (and subscription). */
export function bindCommand(environment: string, customer: string, stripeCustomer: string, subscription: string | null): string {
  return `fleet bind ${customer} --env ${environment} --stripe-customer ${stripeCustomer}${subscription ? ` --subscription ${subscription}` : ""}`;
}

const STRIPE_ID = { customer: /^cus_[A-Za-z0-9]{1,250}$/, subscription: /^sub_[A-Za-z0-9]{1,250}$/ };

/** A Stripe customer or subscription id, or a ConfigError naming the field. */
export function parseStripeId(raw: unknown, kind: "customer" | "subscription", field: string): string {
  if (typeof raw === "string" && STRIPE_ID[kind].test(raw)) return raw;
  const example = kind === "customer" ? "cus_" : "sub_";
  throw new ConfigError(field, [{ path: field, found: raw === undefined ? undefined : JSON.stringify(raw),
    message: `must be a Stripe ${kind} id: ${example} followed by letters and digits, e.g. ${example}NffrFeUfNV2Hib` }]);
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS bindings (
  environment TEXT NOT NULL,
  customer TEXT NOT NULL,
  stripe_customer TEXT NOT NULL,
  subscription TEXT,
  bound_at TEXT NOT NULL,
  bound_by TEXT NOT NULL,
  PRIMARY KEY (environment, customer)
) STRICT;`;

function rowToBinding(r: Record<string, SQLOutputValue>): Binding {
  return {
    environment: String(r.environment), customer: String(r.customer), stripeCustomer: String(r.stripe_customer),
    subscription: r.subscription === null ? null : String(r.subscription), boundAt: String(r.bound_at), boundBy: String(r.bound_by),
  };
}

export function defaultBindingsPath(projectDir: string): string {
  return path.join(projectDir, ".fleet", "webhooks", "bindings.db");
}

export class BindingStore {
  private constructor(private readonly db: DatabaseSync, readonly file: string) {}

  /** Opens (creating it when missing, mode 0600 in a 0700 directory) the project's bindings file. */
  static open(file: string): BindingStore {
    const absolute = path.resolve(file);
    fs.mkdirSync(path.dirname(absolute), { recursive: true, mode: 0o700 });
    const isNew = !fs.existsSync(absolute);
    const db = new DatabaseSync(absolute, { timeout: 5000 });
    if (isNew) fs.chmodSync(absolute, 0o600);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
    db.exec(SCHEMA);
    return new BindingStore(db, absolute);
  }

  /** Every binding in the file (read-only); none when there is no file yet. */
  static readAll(file: string): Binding[] {
    if (!fs.existsSync(file)) return [];
    const db = new DatabaseSync(file, { readOnly: true, timeout: 5000 });
    try {
      return db.prepare("SELECT * FROM bindings ORDER BY environment, customer").all().map(rowToBinding);
    } finally {
      db.close();
    }
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }

  get(environment: string, customer: string): Binding | undefined {
    const row = this.db.prepare("SELECT * FROM bindings WHERE environment = :environment AND customer = :customer").get({ environment, customer });
    return row ? rowToBinding(row) : undefined;
  }

  /** Binds (or re-binds) a customer. */
  set(b: Binding): void {
    this.db.prepare(`INSERT INTO bindings (environment, customer, stripe_customer, subscription, bound_at, bound_by)
        VALUES (:environment, :customer, :stripeCustomer, :subscription, :boundAt, :boundBy)
        ON CONFLICT (environment, customer) DO UPDATE SET stripe_customer = excluded.stripe_customer,
          subscription = excluded.subscription, bound_at = excluded.bound_at, bound_by = excluded.bound_by`)
      .run({ environment: b.environment, customer: b.customer, stripeCustomer: b.stripeCustomer, subscription: b.subscription,
        boundAt: b.boundAt, boundBy: b.boundBy });
  }

  /** Removes a binding; whether there was one. */
  clear(environment: string, customer: string): boolean {
    return Number(this.db.prepare("DELETE FROM bindings WHERE environment = :environment AND customer = :customer")
      .run({ environment, customer }).changes) === 1;
  }

  list(environment?: string): Binding[] {
    return this.db.prepare("SELECT * FROM bindings WHERE (:environment IS NULL OR environment = :environment) ORDER BY environment, customer")
      .all({ environment: environment ?? null }).map(rowToBinding);
  }
}
