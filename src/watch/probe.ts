/**
 * An end-to-end probe of a customer: HTTPS through the environment's edge proxy, the way its own
 * customers come in. The watcher keeps its connections between probes (an agent it makes new every
 * minute, so every hostname has a fresh TLS handshake that often); without an agent, a new one each time. It connects to the edge's address whatever the hostname resolves to, sends the
 * hostname (SNI and Host) and checks the certificate against the environment's CA. The answer, how
 * long it took and the certificate's validity (free from the handshake) are what the watcher uses.
 */
import * as https from "node:https";
import type { TLSSocket } from "node:tls";
import type { ProbeFailure } from "./health";

export interface EdgeResponse {
  status: number;
  body: string;
  /** milliseconds from the request to the whole answer */
  ms: number;
  /** the certificate the edge showed for the hostname, when there was a TLS handshake */
  certificate?: { validFrom: string; validTo: string };
}

/** Errors of node's TLS layer that mean the certificate, not the connection (see `classify`). */
const TLS_CODES = /^(ERR_TLS_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET|VERIFY)_|ERR_SSL_|HOSTNAME_MISMATCH)/;

export class EdgeRequestError extends Error {
  constructor(message: string, readonly failure: Exclude<ProbeFailure, "http">, readonly ms: number, readonly reusedSocket = false) {
    super(message);
    this.name = "EdgeRequestError";
  }
}

/** What kind of failure a request error is. Pure. */
export function classify(err: NodeJS.ErrnoException, timedOut: boolean): Exclude<ProbeFailure, "http"> {
  if (timedOut) return "timeout";
  const code = err.code ?? "";
  if (TLS_CODES.test(code) || /certificate|ssl|tls/i.test(err.message)) return "tls";
  return "connect";
}

/**
 * GET `url` (https://<host>[:port]/path) from the edge at `address`, trusting `ca` (undefined: the
 * system's CAs), within `timeoutMs` for the whole answer. Rejects with an EdgeRequestError.
 */
export function requestThroughEdge(address: string, url: string, ca: string | undefined, timeoutMs: number,
  agent?: https.Agent): Promise<EdgeResponse> {
  return once(address, url, ca, timeoutMs, agent).catch((err: unknown) => {
    // a kept connection the edge closed meanwhile (it restarted, or its idle timeout): once more, on a new one
    if (err instanceof EdgeRequestError && err.reusedSocket) return once(address, url, ca, timeoutMs, agent);
    throw err;
  });
}

function once(address: string, url: string, ca: string | undefined, timeoutMs: number, agent: https.Agent | undefined): Promise<EdgeResponse> {
  const u = new URL(url);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    let timedOut = false;
    let certificate: EdgeResponse["certificate"];
    const req = https.request({
      host: address, port: u.port || 443, path: `${u.pathname}${u.search}`, method: "GET",
      servername: u.hostname, headers: { host: u.host }, ...(agent ? { agent } : { ca, agent: false }),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), ms: performance.now() - t0, certificate });
      });
      res.on("error", (err) => req.destroy(err));
    });
    req.on("socket", (socket) => {
      const read = () => {
        const peer = (socket as TLSSocket).getPeerCertificate();
        if (peer?.valid_to) certificate = { validFrom: new Date(peer.valid_from).toISOString(), validTo: new Date(peer.valid_to).toISOString() };
      };
      // a kept connection did its handshake already; a new one does it now
      if (req.reusedSocket) read();
      else socket.once("secureConnect", read);
    });
    const timer = setTimeout(() => { timedOut = true; req.destroy(new Error(`no answer within ${timeoutMs} ms`)); }, timeoutMs);
    req.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      const failure = classify(err, timedOut);
      const reused = !timedOut && req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE");
      reject(new EdgeRequestError(`GET ${url} through ${address}: ${timedOut ? `no answer within ${timeoutMs} ms` : err.message}`, failure, ms, reused));
    });
    req.end();
  });
}
