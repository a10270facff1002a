/**
 * A small client of the OCI distribution API (Registry HTTP API v2) on node:http/https: manifests by tag
 * or digest, blobs (monolithic upload), basic auth and the bearer-token challenge. Enough to keep
 * signatures and SBOMs beside an image (attachments.ts); pushing and pulling images stays the engine's.
 * `registryScheme` says whether the engine talks plain HTTP to an address (its insecure registries).
 */
import * as crypto from "node:crypto";
import * as dns from "node:dns/promises";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import type Dockerode from "dockerode";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
const MANIFEST_TYPES = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

/** Manifests are small (registries cap them at 4 MiB); blobs here are signatures, configs and SBOMs. */
const MAX_MANIFEST_BYTES = 4 << 20;
const MAX_BLOB_BYTES = 64 << 20;
const MAX_REDIRECTS = 5;

export interface RegistryAuth {
  username: string;
  password: string;
}

export interface RegistryClientOptions {
  /** host[:port], as in registry.address */
  address: string;
  scheme: "http" | "https";
  auth?: RegistryAuth;
  /** extra CA certificates (PEM) for https */
  ca?: string | Buffer;
  timeoutMs?: number;
}

export interface Manifest {
  digest: string;
  mediaType: string;
  body: Buffer;
}

/** A registry answer other than the expected one; `status` is the HTTP status (0: no answer). */
export class RegistryError extends Error {
  constructor(message: string, readonly status: number, readonly code?: string) {
    super(message);
  }
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate header: `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g;
  for (let p = re.exec(m[2]!); p; p = re.exec(m[2]!)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? "").replace(/\\(.)/g, "$1");
  return { scheme: m[1]!.toLowerCase(), params };
}

function sha256(bytes: Buffer): string {
  return `sha256:${crypto.createHash("sha256").update(bytes).digest("hex")}`;
}

function checkRepo(repo: string): void {
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repo)) {
    throw new Error(`${JSON.stringify(repo)} is not a repository name (lowercase path components like hardened-fleet/app)`);
  }
}

function errorCode(body: Buffer): { code?: string; detail: string } {
  try {
    const first = (JSON.parse(body.toString("utf8")) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
    if (first) return { code: first.code, detail: `${first.code ?? "error"}: ${first.message ?? ""}`.trim() };
  } catch {
    // not the registry's JSON error
  }
  return { detail: body.toString("utf8").slice(0, 200).trim() };
}

export class RegistryClient {
  readonly address: string;
  readonly scheme: "http" | "https";
  private readonly auth?: RegistryAuth;
  private readonly ca?: string | Buffer;
  private readonly timeoutMs: number;
  /** the Authorization value per scope once a challenge was answered ("" key: basic auth, any scope) */
  private readonly tokens = new Map<string, string>();

  constructor(opts: RegistryClientOptions) {
    if (!/^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9a-fA-F:]+\](?::[0-9]{1,5})?$/.test(opts.address)) {
      throw new Error(`registry address ${JSON.stringify(opts.address)} is not host[:port]`);
    }
    this.address = opts.address;
    this.scheme = opts.scheme;
    this.auth = opts.auth;
    this.ca = opts.ca;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  private url(path: string): URL {
    return new URL(`${this.scheme}://${this.address}${path}`);
  }

  /** One HTTP exchange; follows redirects (dropping Authorization when they leave the registry's host). */
  private send(method: string, url: URL, headers: Record<string, string>, body?: Buffer, maxBytes = MAX_MANIFEST_BYTES,
    redirects = 0): Promise<Response> {
    return new Promise((resolve, reject) => {
      const mod = url.protocol === "https:" ? https : http;
      const req = mod.request(url, {
        method, headers: { ...headers, ...(body ? { "content-length": String(body.length) } : {}) },
        timeout: this.timeoutMs, ...(url.protocol === "https:" && this.ca ? { ca: this.ca } : {}),
      }, (res) => {
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if ([301, 302, 303, 307, 308].includes(status) && location && (method === "GET" || method === "HEAD")) {
          res.resume();
          if (redirects >= MAX_REDIRECTS) return reject(new RegistryError(`${method} ${url.pathname}: too many redirects`, status));
          const next = new URL(location, url);
          const { authorization: _dropped, ...rest } = headers;
          const keep = next.host === url.host ? headers : rest;
          return resolve(this.send(method, next, keep, undefined, maxBytes, redirects + 1));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            req.destroy(new RegistryError(`${method} ${url.pathname}: answer larger than ${maxBytes} bytes`, status));
            return;
          }
          chunks.push(c);
        });
        res.on("end", () => resolve({ status, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new RegistryError(`${method} ${url.href}: no answer in ${this.timeoutMs} ms`, 0)));
      req.on("error", (err) => reject(err instanceof RegistryError ? err
        : new RegistryError(`registry ${this.address} (${this.scheme}) did not answer ${method} ${url.pathname}: ${err.message}`, 0)));
      req.end(body);
    });
  }

  /** Answers a 401's challenge: basic credentials, or a bearer token from the challenge's realm. */
  private async authorize(challenge: Challenge | undefined, scope: string): Promise<string | undefined> {
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") {
      if (!this.auth) return undefined;
      const value = `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString("base64")}`;
      this.tokens.set("", value);
      return value;
    }
    if (challenge.scheme !== "bearer" || !challenge.params.realm) return undefined;
    const realm = new URL(challenge.params.realm);
    if (challenge.params.service) realm.searchParams.set("service", challenge.params.service);
    realm.searchParams.set("scope", challenge.params.scope ?? scope);
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.auth) headers.authorization = `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString("base64")}`;
    const res = await this.send("GET", realm, headers);
    if (res.status !== 200) {
      throw new RegistryError(`registry ${this.address}: the token service ${realm.origin}${realm.pathname} answered ${res.status}` +
        `${this.auth ? ` for user ${this.auth.username}` : " (no credentials given)"}: ${errorCode(res.body).detail}`, res.status);
    }
    let token: unknown;
    try {
      const doc = JSON.parse(res.body.toString("utf8")) as { token?: unknown; access_token?: unknown };
      token = doc.token ?? doc.access_token;
    } catch {
      token = undefined;
    }
    if (typeof token !== "string" || !token) {
      throw new RegistryError(`registry ${this.address}: the token service ${realm.origin}${realm.pathname} gave no token`, res.status);
    }
    const value = `Bearer ${token}`;
    this.tokens.set(scope, value);
    return value;
  }

  /** A request to the registry with the credentials it asks for (one retry after a 401). */
  private async request(method: string, path: string, repo: string, headers: Record<string, string> = {}, body?: Buffer,
    maxBytes?: number): Promise<Response> {
    const scope = `repository:${repo}:${method === "GET" || method === "HEAD" ? "pull" : "pull,push"}`;
    const url = path.startsWith("http://") || path.startsWith("https://") ? new URL(path) : this.url(path);
    const known = this.tokens.get(scope) ?? this.tokens.get("");
    let res = await this.send(method, url, known ? { ...headers, authorization: known } : headers, body, maxBytes);
    if (res.status === 401) {
      const value = await this.authorize(parseChallenge(res.headers["www-authenticate"] as string | undefined), scope);
      if (value) res = await this.send(method, url, { ...headers, authorization: value }, body, maxBytes);
    }
    if (res.status === 401 || res.status === 403) {
      throw new RegistryError(`registry ${this.address} refused ${method} ${url.pathname} (${res.status})` +
        `${this.auth ? ` for user ${this.auth.username}` : ": it needs credentials (registry.username and hardened-fleet:registryPassword)"}` +
        `: ${errorCode(res.body).detail}`, res.status, errorCode(res.body).code);
    }
    return res;
  }

  private fail(what: string, res: Response): never {
    const { code, detail } = errorCode(res.body);
    throw new RegistryError(`registry ${this.address}: ${what} answered ${res.status}${detail ? `: ${detail}` : ""}`, res.status, code);
  }

  /** The manifest at `reference` (tag or digest), or undefined when the registry has none there. */
  async findManifest(repo: string, reference: string): Promise<Manifest | undefined> {
    checkRepo(repo);
    const res = await this.request("GET", `/v2/${repo}/manifests/${encodeURIComponent(reference)}`, repo,
      { accept: MANIFEST_TYPES.join(", ") });
    if (res.status === 404) return undefined;
    if (res.status !== 200) this.fail(`GET manifest ${repo}:${reference}`, res);
    const digest = sha256(res.body);
    if (reference.startsWith("sha256:") && digest !== reference) {
      throw new RegistryError(`registry ${this.address}: the manifest it gave for ${repo}@${reference} has digest ${digest}`, res.status);
    }
    const mediaType = String(res.headers["content-type"] ?? "").split(";")[0]!.trim() || mediaTypeOf(res.body);
    return { digest, mediaType, body: res.body };
  }

  /** The manifest at `reference`; throws when there is none. */
  async getManifest(repo: string, reference: string): Promise<Manifest> {
    const found = await this.findManifest(repo, reference);
    if (!found) throw new RegistryError(`registry ${this.address} has no manifest ${repo}${reference.startsWith("sha256:") ? "@" : ":"}${reference}`, 404, "MANIFEST_UNKNOWN");
    return found;
  }

  /** Puts a manifest under `tag` (or a digest); its media type is the manifest's own mediaType. Returns its digest. */
  async putManifest(repo: string, tag: string, manifest: object | Buffer, mediaType?: string): Promise<string> {
    checkRepo(repo);
    const body = Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest), "utf8");
    const type = mediaType ?? mediaTypeOf(body);
    if (!type) throw new Error(`manifest for ${repo}:${tag} has no mediaType`);
    const res = await this.request("PUT", `/v2/${repo}/manifests/${encodeURIComponent(tag)}`, repo, { "content-type": type }, body);
    if (res.status !== 201 && res.status !== 200) this.fail(`PUT manifest ${repo}:${tag}`, res);
    return sha256(body);
  }

  /** Whether the repository has the blob. */
  async headBlob(repo: string, digest: string): Promise<boolean> {
    checkRepo(repo);
    const res = await this.request("HEAD", `/v2/${repo}/blobs/${digest}`, repo);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    return this.fail(`HEAD blob ${repo}@${digest}`, res);
  }

  /** The blob's bytes, checked against its digest. */
  async getBlob(repo: string, digest: string): Promise<Buffer> {
    checkRepo(repo);
    const res = await this.request("GET", `/v2/${repo}/blobs/${digest}`, repo, {}, undefined, MAX_BLOB_BYTES);
    if (res.status !== 200) this.fail(`GET blob ${repo}@${digest}`, res);
    if (sha256(res.body) !== digest) throw new RegistryError(`registry ${this.address}: blob ${repo}@${digest} has another digest, ${sha256(res.body)}`, res.status);
    return res.body;
  }

  /** Uploads `bytes` as one blob (POST, then PUT ?digest=) unless the repository has it. Returns its digest. */
  async putBlob(repo: string, bytes: Buffer): Promise<string> {
    const digest = sha256(bytes);
    if (await this.headBlob(repo, digest)) return digest;
    const start = await this.request("POST", `/v2/${repo}/blobs/uploads/`, repo, {}, Buffer.alloc(0));
    const location = start.headers.location;
    if (start.status !== 202 || !location) this.fail(`POST blob upload ${repo}`, start);
    const url = new URL(location, this.url("/"));
    url.searchParams.set("digest", digest);
    const res = await this.request("PUT", url.href, repo, { "content-type": "application/octet-stream" }, bytes);
    if (res.status !== 201) this.fail(`PUT blob ${repo}@${digest}`, res);
    return digest;
  }
}

function mediaTypeOf(body: Buffer): string {
  try {
    const t = (JSON.parse(body.toString("utf8")) as { mediaType?: unknown }).mediaType;
    return typeof t === "string" ? t : "";
  } catch {
    return "";
  }
}

/** Whether `ip` (v4 or v6 literal) is inside `cidr`. */
export function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/");
  const family = net.isIP(ip);
  if (!base || family === 0 || net.isIP(base) !== family) return false;
  const bits = bitsText === undefined ? (family === 4 ? 32 : 128) : Number(bitsText);
  const list = new net.BlockList();
  try {
    list.addSubnet(base, bits, family === 4 ? "ipv4" : "ipv6");
  } catch {
    return false;
  }
  return list.check(ip, family === 4 ? "ipv4" : "ipv6");
}

/** The host of host[:port] / [v6]:port, without brackets. */
export function registryHost(address: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (v6) return v6[1]!;
  return address.replace(/:\d+$/, "");
}

/**
 * Pure: whether an engine with this RegistryConfig talks plain HTTP to `address` whose host resolves to
 * `ips`: the address is an index marked insecure, or one of its addresses is in InsecureRegistryCIDRs
 * (the engine puts 127.0.0.0/8 there itself).
 */
export function schemeFromRegistryConfig(config: { IndexConfigs?: Record<string, { Secure?: boolean }>; InsecureRegistryCIDRs?: string[] } | undefined,
  address: string, ips: string[]): "http" | "https" {
  const index = config?.IndexConfigs?.[address] ?? config?.IndexConfigs?.[registryHost(address)];
  if (index) return index.Secure === false ? "http" : "https";
  const cidrs = config?.InsecureRegistryCIDRs ?? [];
  return ips.some((ip) => cidrs.some((c) => inCidr(ip, c))) ? "http" : "https";
}

/** "http" when the engine treats `address` as an insecure registry (docker info's RegistryConfig), else "https". */
export async function registryScheme(engine: Dockerode, address: string): Promise<"http" | "https"> {
  const info = (await engine.info()) as { RegistryConfig?: Parameters<typeof schemeFromRegistryConfig>[0] };
  const host = registryHost(address);
  let ips: string[];
  if (net.isIP(host)) ips = [host];
  else {
    try {
      ips = (await dns.lookup(host, { all: true })).map((a) => a.address);
    } catch {
      ips = [];
    }
  }
  return schemeFromRegistryConfig(info.RegistryConfig, address, ips);
}
