/**
 * The health of one customer as `fleet watch` sees it: a state machine fed with observations (end-to-end
 * probes through the edge hostname, and the engine's events for the customer's container). Pure: the
 * only clock is the observations' `at`, so a given state and observation always give the same result.
 *
 * Rules:
 *  - A probe failure counts; after `downAfterFailures` in a row (default 2) the customer is down, so a
 *    frozen container is down within two probe intervals. A success resets the count.
 *  - A died event with OOMKilled, or an oom event, makes the customer down at once ("OOM-killed").
 *  - A started event after a died one is a restart. Restarts are counted until the customer is stable
 *    again (`upAfterSuccesses` successful probes in a row with no death in between), so they carry
 *    into the incident they cause. At `restartLoopAfter` (default 3) the customer is down at once and
 *    the reason becomes "restart loop (N restarts)"; once down, more restarts only update the reason.
 *  - Other deaths (any exit code: a rollout stops the old container too) only record the exit as a
 *    hint; the probes decide.
 *  - The reason is the most specific thing known: restart loop, then the engine's hint (OOM-killed,
 *    exited with code N), then the healthcheck's output while the engine says unhealthy, then the last
 *    probe failure. While down, the reason is kept up to date without another alert.
 *  - Degraded: probes succeed but the engine's healthcheck says unhealthy. Not alerted. Slow probes
 *    are not degraded (their times are for metrics).
 *  - Recovered: `upAfterSuccesses` successful probes in a row (default 2) end the incident: one
 *    "recovered" alert with the incident's id, its reason and how long it was down. The engine's
 *    healthcheck alone never ends an incident: only the way customers come in does.
 *  - Alerts only on transitions: one "down" when an incident opens (from up, degraded or unknown),
 *    one "recovered" when it closes; never a second "down" while one is open.
 *
 * Observations are applied in the order given; `at` is the watcher's time of the observation (for a
 * probe: when its result came). A time earlier than the last one applied counts as that one, so a
 * clock stepped back never gives a negative duration.
 */

export type ProbeFailure = "timeout" | "tls" | "connect" | "http";

export type Observation =
  | { kind: "probe"; at: string; ok: true; ms: number }
  | { kind: "probe"; at: string; ok: false; failure: ProbeFailure; detail: string }
  /** the container ended; `container` when the engine named it (for `docker logs` in the alert) */
  | { kind: "died"; at: string; exitCode: number; oomKilled: boolean; container?: string }
  | { kind: "oom"; at: string; container?: string }
  /** the engine's healthcheck changed; `output`: the last check's output */
  | { kind: "health"; at: string; healthy: boolean; output?: string; container?: string }
  | { kind: "started"; at: string; container?: string };

export type Status = "up" | "degraded" | "down" | "unknown";

/**
 * What fleet itself owns, watched beside the customers (checks.ts): a certificate the edge shows, a
 * customer's backups and drills, the payment-webhook jobs. Each is an incident while its condition
 * holds, with the same alerts (down when it begins, recovered when it ends).
 */
export type CheckKind = "certificate" | "backup" | "drill" | "webhooks";

/** The store's key of a state or alert: the customer, or "<check>:<subject>" for a check. */
export function healthKey(s: { customer: string; check?: CheckKind }): string {
  return s.check ? `${s.check}:${s.customer}` : s.customer;
}

export interface CustomerHealth {
  environment: string;
  /** the customer; for a check, its subject (a customer, a hostname, "jobs") */
  customer: string;
  /** set for a check of what fleet owns (not a customer's own health) */
  check?: CheckKind;
  status: Status;
  /** ISO time the status began */
  since: string;
  /** why it is down or degraded */
  reason?: string;
  /** the open incident (while down) */
  incident?: string;
  /** probe failures in a row (counted up to the policy's downAfterFailures) */
  failures: number;
  /** successful probes in a row (counted up to the policy's upAfterSuccesses) */
  successes: number;
  /** restarts since the customer was last stable (see the rules) */
  restarts: number;
  /** a died event came and no started one since */
  stopped: boolean;
  /** the engine's last word on the container: "OOM-killed", "exited with code N" (until stable again) */
  engine?: string;
  /** the healthcheck's output while the engine says unhealthy ("" when it had none) */
  unhealthy?: string;
  /** the last probe failure, described (until a probe succeeds) */
  probe?: string;
  /** the customer's container, when an event named it */
  container?: string;
  /** the time of the last observation applied */
  lastAt?: string;
}

export interface Policy {
  downAfterFailures: number;
  upAfterSuccesses: number;
  restartLoopAfter: number;
}

export const DEFAULT_POLICY: Policy = { downAfterFailures: 2, upAfterSuccesses: 2, restartLoopAfter: 3 };

export type AlertKind = "down" | "recovered";

export interface Alert {
  /** incident + ":" + kind: one of each per incident */
  id: string;
  incident: string;
  kind: AlertKind;
  environment: string;
  customer: string;
  check?: CheckKind;
  /** ISO time of the transition */
  at: string;
  /** down: why; recovered: why it was down (the incident's last reason) */
  reason: string;
  /** recovered: when the incident began */
  downSince?: string;
  /** recovered: how long it was down */
  durationSeconds?: number;
  container?: string;
}

/** The policy with defaults for what is not given; each value a whole number of at least 1. */
export function policyOf(partial: Partial<Policy> = {}): Policy {
  const policy = { ...DEFAULT_POLICY, ...partial };
  for (const [key, value] of Object.entries(policy)) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`watch policy ${key} must be a whole number of at least 1, not ${value}`);
  }
  return policy;
}

/** A customer not observed yet. */
export function initialHealth(environment: string, customer: string, at: string): CustomerHealth {
  return { environment, customer, status: "unknown", since: at, failures: 0, successes: 0, restarts: 0, stopped: false };
}

/**
 * An incident id that does not depend on the process: the same decision made again after a crash
 * gives the same id (the store queues an alert id once), and a customer's incidents never share one.
 */
export function incidentIdAt(environment: string, customer: string, at: string): string {
  return `${environment}/${customer}@${at}`;
}

export function describeProbeFailure(failure: ProbeFailure, detail: string): string {
  const what = { timeout: "timeout through the proxy", tls: "TLS error", connect: "cannot connect to the edge", http: "HTTP error" }[failure];
  return detail ? `${what}: ${detail}` : what;
}

function unhealthyText(output: string): string {
  const line = output.trim().replace(/\s+/g, " ");
  return line ? `unhealthy: ${line}` : "unhealthy (the healthcheck printed nothing)";
}

/** The most specific reason the state knows (see the rules). */
export function reasonOf(s: CustomerHealth, policy: Policy = DEFAULT_POLICY): string {
  const engine = s.engine ?? (s.unhealthy !== undefined ? unhealthyText(s.unhealthy) : undefined);
  if (s.restarts >= policy.restartLoopAfter) {
    const loop = `restart loop (${s.restarts} restarts)`;
    return engine ? `${loop}, last: ${engine}` : loop;
  }
  if (engine && s.probe) return `${engine} (probe: ${s.probe})`;
  return engine ?? s.probe ?? "no answer";
}

const ms = (iso: string) => Date.parse(iso);

export function observe(
  state: CustomerHealth,
  observation: Observation,
  policy: Policy,
  newIncidentId: () => string,
): { state: CustomerHealth; alerts: Alert[] } {
  const at = state.lastAt && ms(observation.at) < ms(state.lastAt) ? state.lastAt : observation.at;
  const s: CustomerHealth = { ...state, lastAt: at };
  const alerts: Alert[] = [];
  if ("container" in observation && observation.container) s.container = observation.container;

  const goDown = () => {
    if (s.status === "down") {
      s.reason = reasonOf(s, policy);
      return;
    }
    s.status = "down";
    s.since = at;
    s.successes = 0; // an incident ends only after upAfterSuccesses good probes from its start
    s.incident = newIncidentId();
    s.reason = reasonOf(s, policy);
    alerts.push({
      id: `${s.incident}:down`, incident: s.incident, kind: "down", environment: s.environment, customer: s.customer,
      at, reason: s.reason, ...(s.container ? { container: s.container } : {}),
    });
  };

  /** up, or degraded while the engine says unhealthy; `since` moves only when the status changes */
  const setServing = () => {
    const status: Status = s.unhealthy !== undefined ? "degraded" : "up";
    if (s.status !== status) {
      s.status = status;
      s.since = at;
    }
    if (status === "degraded") s.reason = unhealthyText(s.unhealthy ?? "");
    else delete s.reason;
  };

  switch (observation.kind) {
    case "probe":
      if (observation.ok) {
        s.successes = Math.min(s.successes + 1, policy.upAfterSuccesses); // capped: a steady customer's state stays the same
        s.failures = 0;
        delete s.probe;
        const stable = s.successes >= policy.upAfterSuccesses;
        if (s.status === "down") {
          if (!stable) break;
          const incident = s.incident ?? "";
          const downSince = s.since;
          alerts.push({
            id: `${incident}:recovered`, incident, kind: "recovered", environment: s.environment, customer: s.customer,
            at, reason: s.reason ?? "", downSince, durationSeconds: Math.round((ms(at) - ms(downSince)) / 1000),
            ...(s.container ? { container: s.container } : {}),
          });
          delete s.incident;
        }
        if (stable) {
          s.restarts = 0;
          delete s.engine;
        }
        setServing();
      } else {
        s.failures = Math.min(s.failures + 1, policy.downAfterFailures);
        s.successes = 0;
        s.probe = describeProbeFailure(observation.failure, observation.detail);
        if (s.status === "down" || s.failures >= policy.downAfterFailures) goDown();
      }
      break;
    case "died":
      s.successes = 0;
      s.stopped = true;
      s.engine = observation.oomKilled ? "OOM-killed" : `exited with code ${observation.exitCode}`;
      if (observation.oomKilled || s.status === "down") goDown();
      break;
    case "oom":
      s.engine = "OOM-killed";
      goDown();
      break;
    case "started":
      if (s.stopped) {
        s.stopped = false;
        s.restarts++;
      }
      if (s.status === "down" || s.restarts >= policy.restartLoopAfter) goDown();
      break;
    case "health":
      if (observation.healthy) delete s.unhealthy;
      else s.unhealthy = observation.output ?? "";
      if (s.status === "down") s.reason = reasonOf(s, policy);
      else if (s.status !== "unknown") setServing();
      break;
  }
  return { state: s, alerts };
}

/**
 * A check's step: the condition holds now (`active`, with `reason`) or not. An incident opens when it
 * begins to hold and closes when it stops; the reason is kept up to date in between. Pure.
 */
export function checkStep(state: CustomerHealth, active: boolean, reason: string, at: string): { state: CustomerHealth; alerts: Alert[] } {
  const s: CustomerHealth = { ...state, lastAt: at };
  const alerts: Alert[] = [];
  const who = { environment: s.environment, customer: s.customer, ...(s.check ? { check: s.check } : {}) };
  if (active) {
    if (s.status !== "down") {
      s.status = "down";
      s.since = at;
      s.incident = `${s.environment}/${healthKey(s)}@${at}`;
      alerts.push({ id: `${s.incident}:down`, incident: s.incident, kind: "down", ...who, at, reason });
    }
    s.reason = reason;
  } else if (s.status !== "up") {
    if (s.status === "down" && s.incident) {
      alerts.push({
        id: `${s.incident}:recovered`, incident: s.incident, kind: "recovered", ...who, at, reason: s.reason ?? "",
        downSince: s.since, durationSeconds: Math.round((Date.parse(at) - Date.parse(s.since)) / 1000),
      });
    }
    s.status = "up";
    s.since = at;
    delete s.incident;
    delete s.reason;
  }
  return { state: s, alerts };
}
