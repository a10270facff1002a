/** Checks that an image about to be promoted is on the Docker host and carries the hardening profile. */
import Dockerode from "dockerode";
import { APP_GID, APP_UID, LABEL_NONROOT_UID } from "../hardening/names";

export interface PromotableImage {
  ref: string;
  name: string;
  version: string;
  revision: string;
}

export async function checkPromotableImage(ref: string, source: string, engine = new Dockerode()): Promise<PromotableImage> {
  let info: Dockerode.ImageInspectInfo;
  try {
    info = await engine.getImage(ref).inspect();
  } catch (err) {
    throw new Error(`image ${ref} (from ${source}) is not on the Docker host: deploy it to staging first, or point DOCKER_HOST at the host that has it (${(err as Error).message})`);
  }
  const labels = info.Config.Labels ?? {};
  const problems: string[] = [];
  if (info.Config.User !== `${APP_UID}:${APP_GID}`) problems.push(`its USER is '${info.Config.User}', not ${APP_UID}:${APP_GID}`);
  if (!info.Config.Healthcheck?.Test?.length || info.Config.Healthcheck.Test[0] === "NONE") problems.push("it has no HEALTHCHECK");
  if (labels[LABEL_NONROOT_UID] !== String(APP_UID)) problems.push(`it lacks the label ${LABEL_NONROOT_UID}=${APP_UID}`);
  if (problems.length > 0) throw new Error(`image ${ref} (from ${source}) cannot be promoted: ${problems.join("; ")}`);
  return {
    ref: info.Id,
    name: info.RepoTags?.[0] ?? ref,
    version: labels["org.opencontainers.image.version"] ?? "unknown",
    revision: labels["org.opencontainers.image.revision"] ?? "unknown",
  };
}
