/**
 * What a child process of fleet may see of fleet's environment: an allowlist, never the whole of it.
 *
 * fleet's own environment holds secrets that only fleet itself reads (STRIPE_WEBHOOK_SECRET,
 * FLEET_JOBS_TOKEN, HF_REGISTRY_PASSWORD, ...). A child inherits everything by default, and pulumi
 * passes its environment on to its language host, the program, the plugins and the dynamic providers:
 * every one of them would hold every secret. So each child gets only the variables it needs.
 *
 * Pure: no process.env read here; the callers pass it in.
 */

/** Every child: finding programs, the user's home and temp directory, the locale. */
const BASE_NAMES = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TMP", "TEMP", "LANG", "LANGUAGE", "TZ"];
const BASE_PREFIXES = ["LC_"];

/**
 * pulumi, its plugins, the program and the dynamic providers, on top of the base:
 *  - PULUMI_*: the CLI's own settings (home, backend, passphrase, access token of a cloud backend);
 *  - HARDENED_FLEET_*: where the toolchain is (toolchain/locate.sh);
 *  - the Docker connection as the docker provider and dockerode read it (DOCKER_HOST and its TLS
 *    files, an ssh:// host's agent), and certificates and proxies for a remote state backend;
 *  - the credentials of a state backend in a bucket (s3://, azblob://, gs://), which pulumi itself needs.
 */
const PULUMI_NAMES = [
  "DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG", "DOCKER_CONTEXT", "SSH_AUTH_SOCK",
  "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR",
  "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
  "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_PROJECT", "GOOGLE_CREDENTIALS",
];
const PULUMI_PREFIXES = ["PULUMI_", "HARDENED_FLEET_", "AWS_", "AZURE_"];

export type ChildKind = "base" | "pulumi";

function allowed(kind: ChildKind, name: string): boolean {
  if (BASE_NAMES.includes(name) || BASE_PREFIXES.some((p) => name.startsWith(p))) return true;
  if (kind === "base") return false;
  return PULUMI_NAMES.includes(name) || PULUMI_PREFIXES.some((p) => name.startsWith(p));
}

/** The variables of `parent` that a child of this kind may see, plus `set` (which wins). */
export function childEnv(parent: NodeJS.ProcessEnv, kind: ChildKind, set: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(parent)) {
    if (value !== undefined && allowed(kind, name)) out[name] = value;
  }
  return { ...out, ...set };
}

/**
 * For a library that merges process.env into its children's environment whatever it is given (the
 * Pulumi Automation API runs its commands with execa's extendEnv): childEnv, plus every other
 * variable of `parent` set to undefined. Node leaves a variable whose value is undefined out of a
 * child's environment, so the merge adds nothing the allowlist does not allow.
 */
export function childEnvOverriding(parent: NodeJS.ProcessEnv, kind: ChildKind, set: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {};
  for (const name of Object.keys(parent)) env[name] = undefined;
  return { ...env, ...childEnv(parent, kind, set) } as Record<string, string>;
}

/** Secrets fleet reads itself; `fleet serve` removes them from process.env once read (defence in depth). */
export const FLEET_SECRETS = ["STRIPE_WEBHOOK_SECRET", "FLEET_JOBS_TOKEN", "FLEET_STATUS_TOKEN", "HF_REGISTRY_PASSWORD", "HF_REGISTRY_USERNAME"] as const;
