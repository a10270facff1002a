/**
 * The engine's word on customers' containers: its event stream, read from a cursor (so a watcher
 * started again reads what happened while it was away, as far as the engine still holds it) and
 * turned into the observations of health.ts. One follower per engine of an environment: the host's,
 * or each swarm node's (a swarm task is a container on its node, with the customer's labels).
 */
import type Dockerode from "dockerode";
import { LABEL_CUSTOMER, LABEL_ENVIRONMENT, LABEL_ROLE, ROLE_CUSTOMER } from "../hardening/names";
import type { Observation } from "./health";

/** The fields of a Docker container event this module reads. */
export interface EngineEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  timeNano?: number | string;
  time?: number;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

export interface CustomerEvent {
  environment: string;
  customer: string;
  /** the event's time in nanoseconds since the epoch, as a decimal string (the cursor) */
  cursor: string;
  observation: Observation;
}

/** ISO time of a nanosecond cursor. */
export function cursorTime(cursor: string): string {
  return new Date(Number(BigInt(cursor) / 1_000_000n)).toISOString();
}

/**
 * The customer and observation an event means, or undefined (another role, another action). A died
 * event carries what the caller found on inspecting the container (OOMKilled); a health event the
 * healthcheck's last output. Pure.
 */
export function customerEventOf(e: EngineEvent, extra: { oomKilled?: boolean; healthOutput?: string } = {}): CustomerEvent | undefined {
  const attrs = e.Actor?.Attributes ?? {};
  if ((e.Type ?? "container") !== "container" || attrs[LABEL_ROLE] !== ROLE_CUSTOMER) return undefined;
  const environment = attrs[LABEL_ENVIRONMENT];
  const customer = attrs[LABEL_CUSTOMER];
  if (!environment || !customer) return undefined;
  const nanos = e.timeNano !== undefined ? BigInt(e.timeNano) : BigInt(e.time ?? 0) * 1_000_000_000n;
  const cursor = nanos.toString();
  const at = cursorTime(cursor);
  const container = attrs.name;
  const action = e.Action ?? e.status ?? "";
  let observation: Observation;
  if (action === "die") {
    const exitCode = Number(attrs.exitCode ?? -1);
    observation = { kind: "died", at, exitCode, oomKilled: extra.oomKilled === true, container };
  } else if (action === "oom") {
    observation = { kind: "oom", at, container };
  } else if (action === "start") {
    observation = { kind: "started", at, container };
  } else if (action.startsWith("health_status")) {
    const healthy = action.trim().endsWith("healthy") && !action.includes("unhealthy");
    observation = { kind: "health", at, healthy, container, ...(healthy ? {} : { output: extra.healthOutput ?? "" }) };
  } else {
    return undefined;
  }
  return { environment, customer, cursor, observation };
}

/** How many recent events a follower remembers to skip a reopened stream's repeats. */
const SEEN_EVENTS = 1000;

export interface FollowHandle {
  stop(): void;
}

/**
 * Follows the container events of customers on `engine` from `since` (a nanosecond cursor; undefined:
 * from now), calling `onEvent` for each, in order, one at a time. A broken stream (the engine
 * restarted) is opened again from the last event seen, after `retryMs`. Errors are logged, never thrown.
 */
export function followCustomerEvents(engine: Dockerode, since: string | undefined, onEvent: (e: CustomerEvent) => Promise<void>,
  log: (line: string) => void, retryMs = 2000): FollowHandle {
  let stopped = false;
  let cursor = since;
  /** the events taken lately (time, container, action), oldest first: a reopened stream's repeats are skipped */
  const seen = new Set<string>();
  let current: NodeJS.ReadableStream & { destroy?: () => void } | undefined;
  let chain = Promise.resolve();
  const open = async (): Promise<void> => {
    if (stopped) return;
    try {
      // the engine takes seconds with a fraction (nanoseconds after the point)
      const sinceArg = cursor ? `${BigInt(cursor) / 1_000_000_000n}.${(BigInt(cursor) % 1_000_000_000n).toString().padStart(9, "0")}` : undefined;
      const options = {
        ...(sinceArg ? { since: sinceArg } : {}),
        filters: JSON.stringify({ type: ["container"], label: [`${LABEL_ROLE}=${ROLE_CUSTOMER}`] }),
      } as unknown as Dockerode.GetEventsOptions; // the API takes "seconds.nanoseconds"; the types say a number
      const stream = (await engine.getEvents(options)) as unknown as NodeJS.ReadableStream & { destroy?: () => void };
      current = stream;
      let buffered = "";
      stream.on("data", (chunk: Buffer) => {
        buffered += chunk.toString("utf8");
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          let raw: EngineEvent;
          try { raw = JSON.parse(line) as EngineEvent; } catch { continue; }
          chain = chain.then(async () => {
            const nanos = raw.timeNano !== undefined ? BigInt(raw.timeNano) : BigInt(raw.time ?? 0) * 1_000_000_000n;
            // a stream opened again from the cursor gives the events at the cursor again: each is taken
            // once. Not "nothing older than the cursor": the engine may send one container's event after
            // another's with a later time (a busy engine; a customer's die after a neighbour's health
            // event), and that event counts (its restart, its death)
            const key = `${nanos}:${raw.Actor?.ID ?? raw.id ?? ""}:${raw.Action ?? raw.status ?? ""}`;
            // what the watcher took before it started (the store's cursor) is not taken again
            if (seen.has(key) || (since !== undefined && nanos <= BigInt(since))) return;
            seen.add(key);
            if (seen.size > SEEN_EVENTS) seen.delete(seen.values().next().value!);
            const extra = await enrich(engine, raw);
            // the cursor only moves forward: a watcher started again reads from the latest event it took
            if (cursor === undefined || nanos > BigInt(cursor)) cursor = nanos.toString();
            const event = customerEventOf(raw, extra);
            if (event) await onEvent({ ...event, cursor });
          }).catch((err: Error) => log(`engine event: ${err.message}`));
        }
      });
      const reopen = () => {
        if (current !== stream) return;
        current = undefined;
        if (!stopped) setTimeout(() => void open(), retryMs);
      };
      stream.on("end", reopen);
      stream.on("close", reopen);
      stream.on("error", (err: Error) => { log(`engine events: ${err.message}; following again in ${retryMs} ms`); reopen(); });
    } catch (err) {
      log(`engine events: ${(err as Error).message.split("\n")[0]}; trying again in ${retryMs} ms`);
      if (!stopped) setTimeout(() => void open(), retryMs);
    }
  };
  void open();
  return {
    stop() {
      stopped = true;
      current?.destroy?.();
    },
  };
}

/** What the event alone does not say: a died container's OOMKilled, an unhealthy one's last check output. */
async function enrich(engine: Dockerode, e: EngineEvent): Promise<{ oomKilled?: boolean; healthOutput?: string }> {
  const action = e.Action ?? e.status ?? "";
  const id = e.Actor?.ID ?? e.id;
  if (!id || !(action === "die" || action.includes("unhealthy"))) return {};
  try {
    const info = await engine.getContainer(id).inspect();
    if (action === "die") return { oomKilled: info.State.OOMKilled === true };
    const logs = info.State.Health?.Log ?? [];
    return { healthOutput: (logs[logs.length - 1]?.Output ?? "").trim().slice(-500) };
  } catch {
    return {}; // removed already (a rollout replaced it)
  }
}
