/**
 * target: swarm: whether the overlay networks a container is on are encrypted. A customer's overlay
 * carries its traffic between nodes (the edge proxy on the manager to its task on another node);
 * Docker encrypts it with IPsec (ESP) only when the network was created with the option `encrypted`.
 * A pure check over `docker network inspect`, run by the swarm target's audit (src/targets/swarm/target.ts).
 */
import type { CheckResult } from "./checks";

export const OVERLAY_CHECK_ID = "overlay-encrypted";
export const OVERLAY_CHECK_DESCRIPTION =
  "on a swarm: every overlay network the container is on is encrypted (IPsec between nodes), unless swarm.unencryptedOverlays waives it with a reason";

/** What `docker network inspect` (or the network list) reports, as far as this check reads it. */
export interface NetworkInfo {
  Name: string;
  Driver?: string;
  Options?: Record<string, string> | null;
}

/** swarm.unencryptedOverlays of the environment config */
export interface OverlayWaiver {
  reason: string;
}

/** Docker reads the option by its presence (`--opt encrypted` stores an empty value). Pure. */
export function isEncrypted(network: NetworkInfo): boolean {
  return network.Options != null && Object.hasOwn(network.Options, "encrypted");
}

/**
 * The check for one container, given the networks it is on. Unencrypted overlays fail it, naming
 * them and the fix; with a waiver they pass, and the detail says they are unencrypted and why. Pure.
 */
export function overlayCheck(networks: NetworkInfo[], waiver?: OverlayWaiver): CheckResult {
  const overlays = networks.filter((n) => n.Driver === "overlay");
  const clear = overlays.filter((n) => !isEncrypted(n)).map((n) => n.Name).sort();
  if (overlays.length === 0) return { id: OVERLAY_CHECK_ID, ok: true, detail: "on no overlay network" };
  if (clear.length === 0) return { id: OVERLAY_CHECK_ID, ok: true, detail: `encrypted: ${overlays.map((n) => n.Name).sort().join(", ")}` };
  if (waiver) return { id: OVERLAY_CHECK_ID, ok: true, detail: `NOT encrypted (${clear.join(", ")}), waived by swarm.unencryptedOverlays: ${waiver.reason}` };
  return {
    id: OVERLAY_CHECK_ID, ok: false,
    detail: `${clear.join(", ")} carr${clear.length === 1 ? "ies" : "y"} customer traffic between nodes unencrypted: ` +
      "redeploy the customer ('fleet up <env>-<customer>'), which moves it to an encrypted overlay, " +
      "or, if the nodes cannot do IPsec, waive it with swarm.unencryptedOverlays: {reason: ...}",
  };
}
