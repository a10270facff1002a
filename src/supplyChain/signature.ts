/**
 * Image signatures in cosign's key-based format, with node:crypto only: ECDSA P-256 over SHA-256 of a
 * "simple signing" payload that names the image's manifest digest; the signature is the DER ECDSA
 * signature, base64. No certificate and no transparency log: whoever holds the public key checks it
 * offline. `cosign verify --key` accepts these signatures and fleet accepts cosign's
 * (test/supplyChain/signature.test.ts). Pure except key generation.
 */
import * as crypto from "node:crypto";

/** critical.type of every cosign image signature payload. */
export const COSIGN_SIGNATURE_TYPE = "cosign container image signature";

/** One signature as kept beside an image: both fields base64 (payload: its exact bytes). */
export interface SignatureRecord {
  payload: string;
  signature: string;
}

/** The payload cosign signs ("simple signing"), as fleet reads it. */
export interface SimpleSigningPayload {
  critical: {
    identity: { "docker-reference": string };
    image: { "docker-manifest-digest": string };
    type: string;
  };
  optional: Record<string, unknown> | null;
}

export type VerifyFailure = "unsigned" | "other-key" | "wrong-digest" | "malformed";

export type VerifyResult =
  | { ok: true; keyFingerprint: string; dockerReference: string; optional: Record<string, unknown> | null }
  | { ok: false; reason: VerifyFailure; message: string };

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Throws, naming `what`, unless `digest` is sha256:<64 hex>. */
export function checkDigest(digest: string, what = "digest"): void {
  if (!DIGEST.test(digest)) throw new Error(`${what} ${JSON.stringify(digest)} is not a sha256 digest (sha256:<64 hex digits>)`);
}

function isP256(key: crypto.KeyObject): boolean {
  return key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1";
}

/** A PEM public key (SPKI, "BEGIN PUBLIC KEY", as cosign.pub) on P-256; `what` names the setting in errors. */
export function parsePublicKey(pem: string, what = "supplyChain.publicKey"): crypto.KeyObject {
  if (typeof pem !== "string" || !pem.includes("-----BEGIN ")) {
    throw new Error(`${what} is not a PEM public key: no "-----BEGIN PUBLIC KEY-----" block`);
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new Error(`${what} is not a PEM public key: it holds a private key; give its public key ("BEGIN PUBLIC KEY")`);
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPublicKey({ key: pem, format: "pem" });
  } catch (err) {
    throw new Error(`${what} is not a PEM public key: ${(err as Error).message}`);
  }
  if (!isP256(key)) {
    throw new Error(`${what} is not a PEM public key fleet can use: it is ${describeKey(key)}, not ECDSA P-256`);
  }
  return key;
}

/** A PEM private key (PKCS#8 "BEGIN PRIVATE KEY", or SEC1 "BEGIN EC PRIVATE KEY") on P-256, unencrypted. */
export function parsePrivateKey(pem: string, what = "supplyChain.signingKey"): crypto.KeyObject {
  if (typeof pem !== "string" || !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new Error(`${what} is not a PEM private key: no "-----BEGIN PRIVATE KEY-----" block`);
  }
  if (/-----BEGIN (ENCRYPTED|ENCRYPTED SIGSTORE) PRIVATE KEY-----/.test(pem)) {
    throw new Error(`${what} is not a PEM private key fleet can use: it is encrypted (cosign.key is); ` +
      `give an unencrypted PKCS#8 key (kept as a Pulumi secret instead)`);
  }
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey({ key: pem, format: "pem" });
  } catch (err) {
    throw new Error(`${what} is not a PEM private key: ${(err as Error).message}`);
  }
  if (!isP256(key)) {
    throw new Error(`${what} is not a PEM private key fleet can use: it is ${describeKey(key)}, not ECDSA P-256`);
  }
  return key;
}

function describeKey(key: crypto.KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return `a ${key.asymmetricKeyType ?? "unknown"} key${curve ? ` on ${curve}` : ""}`;
}

/** A new ECDSA P-256 key pair: PKCS#8 and SPKI PEM. */
export function generateSigningKey(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/** The SPKI PEM public key of a private key. */
export function publicKeyOf(privateKeyPem: string): string {
  return crypto.createPublicKey(parsePrivateKey(privateKeyPem)).export({ type: "spki", format: "pem" }).toString();
}

/** sha256 of the key's DER SPKI, hex: names a key in messages. */
export function keyFingerprint(publicKeyPem: string): string {
  const der = parsePublicKey(publicKeyPem).export({ type: "spki", format: "der" });
  return crypto.createHash("sha256").update(der).digest("hex");
}

/** The payload bytes cosign signs for `digest` (fields in cosign's order; optional null when none). */
export function signingPayload(dockerReference: string, digest: string, optional?: Record<string, string>): Buffer {
  checkDigest(digest);
  if (!dockerReference) throw new Error("the docker reference (registry/repository) of a signature must not be empty");
  const sorted = optional === undefined || Object.keys(optional).length === 0 ? null
    : Object.fromEntries(Object.keys(optional).sort().map((k) => [k, optional[k]]));
  const payload: SimpleSigningPayload = {
    critical: {
      identity: { "docker-reference": dockerReference },
      image: { "docker-manifest-digest": digest },
      type: COSIGN_SIGNATURE_TYPE,
    },
    optional: sorted,
  };
  return Buffer.from(JSON.stringify(payload), "utf8");
}

/** Signs `digest` (an image manifest digest, or a local image ID) for `dockerReference` (registry/repository). */
export function signImage(privateKeyPem: string, dockerReference: string, digest: string,
  optional?: Record<string, string>): SignatureRecord {
  const key = parsePrivateKey(privateKeyPem);
  const payload = signingPayload(dockerReference, digest, optional);
  const signature = crypto.sign("sha256", payload, { key, dsaEncoding: "der" });
  return { payload: payload.toString("base64"), signature: signature.toString("base64") };
}

/** Strict base64 (standard alphabet, padded; whitespace ignored) or undefined. */
export function decodeBase64(text: unknown): Buffer | undefined {
  if (typeof text !== "string") return undefined;
  const compact = text.replace(/\s+/g, "");
  if (compact.length === 0 || !BASE64.test(compact)) return undefined;
  return Buffer.from(compact, "base64");
}

/** The payload's JSON when it is a cosign image signature payload, else undefined. */
export function parsePayload(bytes: Buffer): SimpleSigningPayload | undefined {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
  const v = value as Partial<SimpleSigningPayload> | null;
  const c = v?.critical;
  if (!c || typeof c !== "object" || c.type !== COSIGN_SIGNATURE_TYPE) return undefined;
  if (typeof c.image?.["docker-manifest-digest"] !== "string") return undefined;
  if (typeof c.identity?.["docker-reference"] !== "string") return undefined;
  const optional = v?.optional;
  if (optional !== undefined && optional !== null && (typeof optional !== "object" || Array.isArray(optional))) return undefined;
  return { critical: c, optional: optional ?? null };
}

/**
 * Whether `records` hold a signature of `digest` by `publicKeyPem`: one record whose signature verifies
 * with that key over its payload, and whose payload is a cosign payload naming exactly that digest.
 * Otherwise the most telling failure: wrong-digest (this key signed another digest), other-key,
 * malformed, unsigned (no records). Throws only when the key itself is not a P-256 PEM public key.
 */
export function verifyImage(publicKeyPem: string, digest: string, records: readonly SignatureRecord[]): VerifyResult {
  checkDigest(digest);
  const key = parsePublicKey(publicKeyPem);
  const fingerprint = crypto.createHash("sha256").update(key.export({ type: "spki", format: "der" })).digest("hex");
  const keyName = `supplyChain.publicKey (sha256 ${fingerprint.slice(0, 16)}…)`;
  if (records.length === 0) {
    return { ok: false, reason: "unsigned",
      message: `image ${digest} is not signed: sign it by deploying it through staging with the signing key` };
  }
  let otherKey = 0;
  let malformed: string | undefined;
  let wrongDigest: string | undefined;
  for (const record of records) {
    const payload = decodeBase64(record?.payload);
    const signature = decodeBase64(record?.signature);
    if (!payload || !signature) {
      malformed ??= `its ${!payload ? "payload" : "signature"} is not base64`;
      continue;
    }
    let valid: boolean;
    try {
      valid = crypto.verify("sha256", payload, { key, dsaEncoding: "der" }, signature);
    } catch {
      valid = false; // not a DER ECDSA signature at all: no key made it
    }
    if (!valid) {
      otherKey++;
      continue;
    }
    const parsed = parsePayload(payload);
    if (!parsed) {
      malformed ??= "its payload, signed by this key, is not a cosign image signature payload";
      continue;
    }
    const named = parsed.critical.image["docker-manifest-digest"];
    if (named !== digest) {
      wrongDigest ??= named;
      continue;
    }
    return { ok: true, keyFingerprint: fingerprint, dockerReference: parsed.critical.identity["docker-reference"], optional: parsed.optional };
  }
  const count = `${records.length} signature${records.length === 1 ? "" : "s"}`;
  if (wrongDigest !== undefined) {
    return { ok: false, reason: "wrong-digest",
      message: `image ${digest} is not signed by ${keyName}: a signature by that key is there but its signature names ` +
        `${wrongDigest} (tampered or reused); deploy the image through staging so it signs this digest` };
  }
  if (otherKey > 0) {
    return { ok: false, reason: "other-key",
      message: `image ${digest} is signed by a key whose public key is not supplyChain.publicKey ` +
        `(${count}, none verifies with ${keyName}); sign it by deploying it through staging with the signing key` };
  }
  return { ok: false, reason: "malformed",
    message: `image ${digest} has no valid signature: ${malformed ?? "unreadable"} (${count}); ` +
      `sign it again by deploying it through staging with the signing key` };
}
