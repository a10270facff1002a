/**
 * Where an image's signatures and SBOM are kept. In a registry: cosign's tag layout beside the image,
 * `<repo>:sha256-<hex>.sig` (one OCI image manifest, one simple-signing layer per signature, the
 * signature in the layer's annotation) and `<repo>:sha256-<hex>.sbom` (one layer holding the SBOM), so
 * `cosign verify` and `cosign download sbom` read what fleet writes. Without a registry (docker target
 * without registry.address) the image is known by its local ID, the digest of its config, which names
 * every layer: fleet's store keeps them under <projectDir>/.fleet/supply-chain/<hex>/.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ensurePrivateDirectory, writeFileDurable } from "../config/durableWrite";
import { OCI_MANIFEST, type RegistryClient } from "./ociRegistry";
import { checkDigest, decodeBase64, type SignatureRecord } from "./signature";

/** Layer media type of a signature (cosign pkg/types/media.go SimpleSigningMediaType). */
export const SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json";
/** Layer annotation holding the base64 signature (cosign pkg/oci/static/signature.go SignatureAnnotationKey). */
export const SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
/** `cosign attach sbom --type cyclonedx` of a .json file (cosign pkg/types/media.go CycloneDXJSONMediaType). */
export const CYCLONEDX_JSON_MEDIA_TYPE = "application/vnd.cyclonedx+json";
export const SPDX_JSON_MEDIA_TYPE = "text/spdx+json";
const SBOM_JSON_MEDIA_TYPES = [CYCLONEDX_JSON_MEDIA_TYPE, SPDX_JSON_MEDIA_TYPE, "application/vnd.syft+json"];
const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
/** Go's zero time: what cosign's (go-containerregistry's) config carries when no creation time is recorded. */
const ZERO_TIME = "0001-01-01T00:00:00Z";

// ---------------------------------------------------------------------------------------------------
// Image references

/** An image in a registry (repository digest), or one known only by its local ID on an engine. */
export type ImageLocation =
  | { registry: string; repo: string; digest: string }
  | { registry: undefined; repo: undefined; digest: string };

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/**
 * `registry/name@sha256:…` (a tag before the digest is allowed and dropped) or a bare image ID
 * `sha256:…`. A first path component without '.' or ':' that is not localhost means Docker Hub.
 */
export function parseImageRef(ref: string): ImageLocation {
  if (DIGEST_RE.test(ref)) return { registry: undefined, repo: undefined, digest: ref };
  const at = ref.lastIndexOf("@");
  if (at < 0) throw new Error(`image ${JSON.stringify(ref)} is neither an image ID sha256:<64 hex> nor pinned by digest (registry/name@sha256:<64 hex>)`);
  const digest = ref.slice(at + 1);
  if (!DIGEST_RE.test(digest)) throw new Error(`image ${JSON.stringify(ref)}: ${JSON.stringify(digest)} is not a sha256 digest (sha256:<64 hex>)`);
  let name = ref.slice(0, at);
  const slash = name.indexOf("/");
  let registry = "docker.io";
  if (slash > 0 && (/[.:]/.test(name.slice(0, slash)) || name.slice(0, slash) === "localhost")) {
    registry = name.slice(0, slash);
    name = name.slice(slash + 1);
  }
  const colon = name.lastIndexOf(":");
  if (colon > name.lastIndexOf("/")) name = name.slice(0, colon); // a tag next to the digest
  const parts = name.split("/");
  if (!name || !parts.every((p) => COMPONENT.test(p))) {
    throw new Error(`image ${JSON.stringify(ref)}: ${JSON.stringify(name)} is not a repository name (lowercase path components like hardened-fleet/app)`);
  }
  if (registry === "docker.io" && parts.length === 1) name = `library/${name}`;
  return { registry, repo: name, digest };
}

/** The tag cosign gives an attachment of `digest`: sha256-<hex>.<suffix> (cosign pkg/oci/remote/remote.go normalize). */
export function attachmentTag(digest: string, suffix: "sig" | "sbom"): string {
  checkDigest(digest);
  return `${digest.replace(":", "-")}.${suffix}`;
}

// ---------------------------------------------------------------------------------------------------
// In a registry

interface Descriptor {
  mediaType: string;
  size: number;
  digest: string;
  annotations?: Record<string, string>;
}

interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

function sha256(bytes: Buffer): string {
  return `sha256:${crypto.createHash("sha256").update(bytes).digest("hex")}`;
}

/** The config go-containerregistry writes for an empty image with these (uncompressed) layers, as cosign's. */
export function attachmentConfig(layerDigests: string[]): Buffer {
  return Buffer.from(JSON.stringify({
    architecture: "",
    created: ZERO_TIME,
    history: layerDigests.map(() => ({ created: ZERO_TIME })),
    os: "",
    rootfs: { type: "layers", diff_ids: layerDigests },
    config: {},
  }), "utf8");
}

function parseManifest(body: Buffer, what: string): ImageManifest {
  let m: ImageManifest;
  try {
    m = JSON.parse(body.toString("utf8")) as ImageManifest;
  } catch (err) {
    throw new Error(`${what} is not JSON: ${(err as Error).message}`);
  }
  if (!m || typeof m !== "object" || !m.config || !Array.isArray(m.layers)) throw new Error(`${what} is not an image manifest (no config or layers)`);
  return m;
}

/** Writes an OCI manifest of `layers` (blobs already in the repository) with a cosign-style config under `tag`. */
async function putAttachment(client: RegistryClient, repo: string, tag: string, layers: Descriptor[]): Promise<string> {
  const config = attachmentConfig(layers.map((l) => l.digest));
  const configDigest = await client.putBlob(repo, config);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, size: config.length, digest: configDigest },
    layers,
  };
  return client.putManifest(repo, tag, manifest, OCI_MANIFEST);
}

/**
 * Adds a signature of `digest` to `<repo>:sha256-<hex>.sig` as one more layer next to those there
 * (the same signature twice is kept once), as `cosign sign` does. Returns the .sig manifest's digest.
 * Two writers at once can lose one signature (the registry has no compare-and-swap on tags).
 */
export async function attachSignature(client: RegistryClient, repo: string, digest: string, record: SignatureRecord): Promise<string> {
  const tag = attachmentTag(digest, "sig");
  const payload = decodeBase64(record.payload);
  if (!payload || !decodeBase64(record.signature)) throw new Error(`signature of ${repo}@${digest} is not base64 (payload and signature)`);
  const existing = await client.findManifest(repo, tag);
  const layers = existing ? parseManifest(existing.body, `${repo}:${tag}`).layers : [];
  const layerDigest = await client.putBlob(repo, payload);
  if (layers.some((l) => l.digest === layerDigest && l.annotations?.[SIGNATURE_ANNOTATION] === record.signature) && existing) {
    return existing.digest;
  }
  layers.push({ mediaType: SIMPLE_SIGNING_MEDIA_TYPE, size: payload.length, digest: layerDigest,
    annotations: { [SIGNATURE_ANNOTATION]: record.signature } });
  return putAttachment(client, repo, tag, layers);
}

/** Every simple-signing layer of `<repo>:sha256-<hex>.sig` as a record; empty when there is no .sig tag. */
export async function readSignatures(client: RegistryClient, repo: string, digest: string): Promise<SignatureRecord[]> {
  const tag = attachmentTag(digest, "sig");
  const found = await client.findManifest(repo, tag);
  if (!found) return [];
  const manifest = parseManifest(found.body, `${repo}:${tag}`);
  const records: SignatureRecord[] = [];
  for (const layer of manifest.layers) {
    if (layer.mediaType !== SIMPLE_SIGNING_MEDIA_TYPE) continue;
    const signature = layer.annotations?.[SIGNATURE_ANNOTATION];
    if (typeof signature !== "string") continue;
    const payload = await client.getBlob(repo, layer.digest);
    records.push({ payload: payload.toString("base64"), signature });
  }
  return records;
}

/** Puts `sbom` (JSON) at `<repo>:sha256-<hex>.sbom`, replacing one there, as `cosign attach sbom` does. */
export async function attachSbom(client: RegistryClient, repo: string, digest: string, sbom: object,
  mediaType = CYCLONEDX_JSON_MEDIA_TYPE): Promise<string> {
  const tag = attachmentTag(digest, "sbom");
  const bytes = Buffer.from(JSON.stringify(sbom), "utf8");
  const layerDigest = await client.putBlob(repo, bytes);
  return putAttachment(client, repo, tag, [{ mediaType, size: bytes.length, digest: layerDigest }]);
}

/** The SBOM at `<repo>:sha256-<hex>.sbom` (its first JSON SBOM layer), or undefined when there is none. */
export async function readSbom(client: RegistryClient, repo: string, digest: string): Promise<{ mediaType: string; sbom: unknown } | undefined> {
  const tag = attachmentTag(digest, "sbom");
  const found = await client.findManifest(repo, tag);
  if (!found) return undefined;
  const manifest = parseManifest(found.body, `${repo}:${tag}`);
  const layer = manifest.layers.find((l) => SBOM_JSON_MEDIA_TYPES.includes(l.mediaType));
  if (!layer) throw new Error(`${repo}:${tag} holds no JSON SBOM (layers: ${manifest.layers.map((l) => l.mediaType).join(", ") || "none"})`);
  const bytes = await client.getBlob(repo, layer.digest);
  try {
    return { mediaType: layer.mediaType, sbom: JSON.parse(bytes.toString("utf8")) as unknown };
  } catch (err) {
    throw new Error(`the SBOM at ${repo}:${tag} is not JSON: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Without a registry: fleet's store

export type LocalKind = "signatures" | "sbom" | "findings";
export type LocalValue<K extends LocalKind> = K extends "signatures" ? SignatureRecord[] : unknown;

const LOCAL_FILES: Record<LocalKind, string> = {
  signatures: "signatures.json",
  sbom: "sbom.cdx.json",
  findings: "findings.json",
};

/** <projectDir>/.fleet/supply-chain/<hex>/: the store of a local image ID. */
export function localDirectory(projectDir: string, imageId: string): string {
  checkDigest(imageId, "image ID");
  return path.join(projectDir, ".fleet", "supply-chain", imageId.slice("sha256:".length));
}

/** The file of one kind in the store of `imageId`. */
export function localFile(projectDir: string, imageId: string, kind: LocalKind): string {
  return path.join(localDirectory(projectDir, imageId), LOCAL_FILES[kind]);
}

function checkRecords(value: unknown, where: string): SignatureRecord[] {
  if (!Array.isArray(value) || !value.every((r) => r && typeof r === "object" &&
    typeof (r as SignatureRecord).payload === "string" && typeof (r as SignatureRecord).signature === "string")) {
    throw new Error(`${where} is not a list of signatures ({payload, signature} base64 strings)`);
  }
  return value.map((r: SignatureRecord) => ({ payload: r.payload, signature: r.signature }));
}

/** Replaces the store's file of `kind` with `value` as JSON, atomically; 0600 files in 0700 directories. */
export function writeLocal<K extends LocalKind>(projectDir: string, imageId: string, kind: K, value: LocalValue<K>): string {
  const file = localFile(projectDir, imageId, kind);
  if (kind === "signatures") checkRecords(value, `signatures of ${imageId}`);
  ensurePrivateDirectory(path.dirname(file));
  writeFileDurable(file, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  return file;
}

/** The store's value of `kind`: signatures [] when none; sbom and findings undefined when none. */
export function readLocal<K extends LocalKind>(projectDir: string, imageId: string, kind: K): LocalValue<K> | undefined {
  const file = localFile(projectDir, imageId, kind);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    return (kind === "signatures" ? [] : undefined) as LocalValue<K> | undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not JSON (${(err as Error).message}): remove it and deploy the image through staging again`);
  }
  return (kind === "signatures" ? checkRecords(value, file) : value) as LocalValue<K>;
}

/** Adds a signature to the store of `imageId`, next to those there (the same one twice is kept once). */
export function addLocalSignature(projectDir: string, imageId: string, record: SignatureRecord): string {
  const records = readLocal(projectDir, imageId, "signatures") ?? [];
  if (!records.some((r) => r.payload === record.payload && r.signature === record.signature)) records.push(record);
  return writeLocal(projectDir, imageId, "signatures", records);
}
