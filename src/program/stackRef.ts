import * as pulumi from "@pulumi/pulumi";

/** Fully qualified name of another stack of this project (works on the file backend and Pulumi Cloud). */
export function stackReferenceName(stack: string): string {
  return `${pulumi.getOrganization()}/${pulumi.getProject()}/${stack}`;
}
