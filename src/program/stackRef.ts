import * as pulumi from "@pulumi/pulumi";

/** Fully qualified name of another stack of this project (works on the file backend and Pulumi Cloud). */
export function stackReferenceName(stack: string): string {
  return `${pulumi.getOrganization()}/${pulumi.getProject()}/${stack}`;
}

/** The engine the program deploys to: the docker provider's own precedence, docker:host config, else DOCKER_HOST. */
export function programDockerHost(): string {
  return new pulumi.Config("docker").get("host") ?? process.env.DOCKER_HOST ?? "";
}
