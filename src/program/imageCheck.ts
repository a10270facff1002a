/**
 * Checks that an image about to be promoted carries the hardening profile. A local image ID must be
 * on the engine already; a repository digest (registry/name@sha256:…) is pulled from its registry,
 * and its base must be the one the promoting environment pins (`image.base`), digest included.
 */
import Dockerode from "dockerode";
import { pullImage } from "../engine/pull";
import { APP_GID, APP_UID, LABEL_BASE, LABEL_NONROOT_UID } from "../hardening/names";

export interface PromotableImage {
  ref: string;
  name: string;
  version: string;
  revision: string;
  /** the base it was built from (its label), when it has one */
  base?: string;
}

export interface PromoteCheck {
  engine?: Dockerode;
  /** the base the promoting environment pins; the image's base label must be exactly this */
  pinnedBase?: string;
  auth?: { username: string; password: string; serveraddress: string };
}

/**
 * The digest of `base` on the engine now: its repository digest when the engine pulled it from a
 * registry (what that registry serves for the tag), else its image ID (a base made on this host);
 * "unknown" when the engine does not have it yet (the build pulls it).
 */
export async function baseDigestOf(engine: Dockerode, base: string): Promise<string> {
  try {
    const info = await engine.getImage(base).inspect();
    const repo = base.split("@")[0]!.replace(/:[^/:]+$/, "");
    const fromRegistry = (info.RepoDigests ?? []).find((d) => d.startsWith(`${repo}@`));
    return fromRegistry ? fromRegistry.slice(repo.length + 1) : info.Id;
  } catch {
    return "unknown";
  }
}

export function isRepoDigest(ref: string): boolean {
  return /^[^@\s]+\/[^@\s]+@sha256:[a-f0-9]{64}$/.test(ref);
}

/** Why an image built from `built` may not run where `pinned` is the approved base; undefined when it may. Pure. */
export function baseMismatch(built: string | undefined, pinned: string): string | undefined {
  if (built === pinned) return undefined;
  return `it was built from base ${built ?? "(no base label)"}, but this environment pins ${pinned} (image.base): ` +
    "rebuild staging on the pinned base, or, after reviewing the new base, pin it in image.base";
}

export async function checkPromotableImage(ref: string, source: string, check: PromoteCheck = {}): Promise<PromotableImage> {
  const engine = check.engine ?? new Dockerode();
  let info: Dockerode.ImageInspectInfo;
  try {
    if (isRepoDigest(ref)) await pullImage(engine, ref, check.auth);
    info = await engine.getImage(ref).inspect();
  } catch (err) {
    throw new Error(isRepoDigest(ref)
      ? `image ${ref} (from ${source}) could not be pulled from its registry: check registry.address and the account (${(err as Error).message})`
      : `image ${ref} (from ${source}) is not on the Docker host: deploy it to staging first, or point DOCKER_HOST at the host that has it (${(err as Error).message})`);
  }
  const labels = info.Config.Labels ?? {};
  const problems: string[] = [];
  if (info.Config.User !== `${APP_UID}:${APP_GID}`) problems.push(`its USER is '${info.Config.User}', not ${APP_UID}:${APP_GID}`);
  if (!info.Config.Healthcheck?.Test?.length || info.Config.Healthcheck.Test[0] === "NONE") problems.push("it has no HEALTHCHECK");
  if (labels[LABEL_NONROOT_UID] !== String(APP_UID)) problems.push(`it lacks the label ${LABEL_NONROOT_UID}=${APP_UID}`);
  const mismatch = check.pinnedBase === undefined ? undefined : baseMismatch(labels[LABEL_BASE], check.pinnedBase);
  if (mismatch) problems.push(mismatch);
  if (problems.length > 0) throw new Error(`image ${ref} (from ${source}) cannot be promoted: ${problems.join("; ")}`);
  return {
    // by repository digest, every node pulls exactly this image from the registry
    ref: isRepoDigest(ref) ? ref : info.Id,
    name: info.RepoTags?.[0] ?? ref,
    version: labels["org.opencontainers.image.version"] ?? "unknown",
    revision: labels["org.opencontainers.image.revision"] ?? "unknown",
    base: labels[LABEL_BASE],
  };
}
