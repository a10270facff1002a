/**
 * Sends the alerts the store holds for each sink (a chat webhook, e-mail). Each sink takes its due
 * alerts in order; an alert is marked delivered only once its send resolved, and a failed send is
 * marked failed with a backoff (store.ts) and ends that sink's turn, so a down sink is retried from its
 * oldest alert, not hammered. A delivery marked delivered is never sent again; passes that overlap
 * never send the same delivery at once. The one way an alert goes twice: the process dies after a sink
 * took it and before the store recorded that (each payload carries the alert id for that case).
 * Apart from the injected sinks and the store, no I/O.
 */
import type { Alert } from "./health";
import { deliveryBackoffMs, type WatchStore } from "./store";

export interface Sink {
  name: string;
  /** resolves once the sink took the alert; rejects otherwise */
  send(alert: Alert): Promise<void>;
}

export interface DeliveryPass {
  delivered: number;
  failed: number;
}

/** Deliveries being sent, per store: a second pass leaves them alone. */
const sending = new WeakMap<WatchStore, Set<string>>();

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0]!.slice(0, 500);
}

/** One pass over every sink's due deliveries, the sinks side by side. */
export async function deliverDue(store: WatchStore, sinks: Sink[], now: Date, log: (line: string) => void): Promise<DeliveryPass> {
  let busy = sending.get(store);
  if (!busy) sending.set(store, (busy = new Set()));
  const inFlight = busy;
  const pass: DeliveryPass = { delivered: 0, failed: 0 };
  await Promise.all(sinks.map(async (sink) => {
    for (const delivery of store.due(sink.name, now)) {
      const key = `${delivery.alert.id}\n${sink.name}`;
      if (inFlight.has(key)) return; // an earlier pass is sending it: the rest of this sink waits its turn
      const current = store.delivery(delivery.alert.id, sink.name); // an overlapping pass may have got further
      if (current?.status === "delivered") continue;
      if (!current || current.nextAttemptAt > now.toISOString()) return;
      inFlight.add(key);
      try {
        try {
          await sink.send(delivery.alert);
        } catch (err) {
          const attempts = current.attempts + 1;
          const delay = deliveryBackoffMs(attempts);
          store.markFailed(delivery.alert.id, sink.name, errorText(err), new Date(now.getTime() + delay));
          pass.failed++;
          log(`alert ${delivery.alert.id} to ${sink.name}: attempt ${attempts} failed, again in ${delay / 1000}s: ${errorText(err)}`);
          return;
        }
        store.markDelivered(delivery.alert.id, sink.name, now);
        pass.delivered++;
      } finally {
        inFlight.delete(key);
      }
    }
  }));
  return pass;
}
