/**
 * The environment stack (staging, prod): owns the image every customer of the environment runs.
 * staging builds it (mode build); prod runs an image that passed staging, by ID (mode promote).
 */
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { EdgeProxy } from "../../components/edgeProxy";
import { HardenedImage } from "../../components/hardenedImage";
import type { EnvironmentConfig } from "../config/schema";
import { checkPromotableImage } from "./imageCheck";
import { programDockerHost, stackReferenceName } from "./stackRef";
import { customerUrl } from "../edge/edgeSpec";

export interface EnvironmentOutputs {
  role: "environment";
  settings: EnvironmentConfig;
  image: pulumi.Output<{ ref: string; name: string; version: string; revision: string }> | undefined;
}

/** The environment's edge proxy (every environment has one), as the stack output `edge`. */
function edgeProxy(env: EnvironmentConfig, projectDir: string) {
  const dockerHost = programDockerHost();
  const proxy = new EdgeProxy(env.name, { env, projectDir, dockerHost });
  return {
    container: proxy.containerName,
    image: proxy.imageRef,
    urls: customerUrl(env.edge, "<customer>"),
  };
}

export async function environmentProgram(env: EnvironmentConfig, projectDir: string): Promise<Record<string, unknown>> {
  const edge = edgeProxy(env, projectDir);
  if (env.image.mode === "build") {
    const image = new HardenedImage(env.name, {
      image: env.image,
      app: env.app,
      projectDir,
      workDir: path.join(projectDir, ".fleet", "build", env.name),
    });
    return {
      role: "environment",
      settings: env,
      edge,
      image: pulumi.all([image.imageRef, image.imageName]).apply(([ref, name]) => ({
        ref, name, version: image.version, revision: image.revision,
      })),
    };
  }

  const source = env.image.fromStack;
  let ref = env.image.digest;
  if (!ref) {
    const upstream = new pulumi.StackReference(stackReferenceName(source));
    const details = await upstream.getOutputDetails("image");
    const value = details.value as { ref?: string } | undefined;
    if (!value?.ref) {
      throw new Error(`environment '${env.name}' promotes from stack '${source}', which has no image yet: run 'pulumi up' on '${source}' first`);
    }
    ref = value.ref;
  }
  const image = await checkPromotableImage(ref, `stack ${source}`);
  return { role: "environment", settings: env, edge, image: { ...image, promotedFrom: source } };
}
