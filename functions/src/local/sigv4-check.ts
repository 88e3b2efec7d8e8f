// SigV4 signature checks of the local S3 (s3-server.ts): a request must be signed with the stack's
// start-up secret, in its Authorization header (the API's SDK clients) or in a pre-signed URL's
// query (what the executor is given), and a pre-signed URL must not have expired. Real S3 does the
// same, so a pre-signed URL whose path or query was changed (another episode's object, a listing)
// is refused here as it would be in AWS, and an access key id alone (it is part of every
// pre-signed URL) opens nothing. The payload hash is taken as the request declares it
// (`x-amz-content-sha256` / `UNSIGNED-PAYLOAD`); the body is not hashed against it.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

/** How far a header-signed request's `x-amz-date` may be from now (S3: 15 minutes). */
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;
/** The longest validity of a pre-signed URL (SigV4: 7 days). */
const MAX_EXPIRES_S = 7 * 24 * 3600;

const rfc3986 = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();
const sha256Hex = (data: string) => createHash("sha256").update(data).digest("hex");

/** `20261202T044500Z` as epoch ms, or NaN. */
function amzDateMs(stamp: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(stamp);
  if (!m) return Number.NaN;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

interface Signed {
  readonly keyId: string;
  readonly scope: string;
  readonly stamp: string;
  readonly signedHeaders: string[];
  readonly signature: string;
  readonly payloadHash: string;
  /** Query pairs that are part of the canonical request (all but the signature). */
  readonly query: Array<[string, string]>;
}

function rawQueryPairs(rawUrl: string): Array<[string, string]> {
  const at = rawUrl.indexOf("?");
  if (at < 0) return [];
  return [...new URLSearchParams(rawUrl.slice(at + 1)).entries()];
}

function parseSigned(req: IncomingMessage): Signed | null {
  const rawUrl = req.url ?? "/";
  const pairs = rawQueryPairs(rawUrl);
  const header = req.headers.authorization;
  if (typeof header === "string") {
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(
        header.trim(),
      );
    const stamp = req.headers["x-amz-date"];
    const payloadHash = req.headers["x-amz-content-sha256"];
    if (!m || typeof stamp !== "string") return null;
    if (Math.abs(Date.now() - amzDateMs(stamp)) > MAX_CLOCK_SKEW_MS) return null;
    return {
      keyId: m[1] as string,
      scope: m[2] as string,
      stamp,
      signedHeaders: (m[3] as string).split(";"),
      signature: m[4] as string,
      payloadHash: typeof payloadHash === "string" ? payloadHash : sha256Hex(""),
      query: pairs,
    };
  }
  const get = (name: string) => pairs.find(([k]) => k === name)?.[1];
  const credential = get("X-Amz-Credential");
  const stamp = get("X-Amz-Date");
  const expires = Number(get("X-Amz-Expires"));
  const signature = get("X-Amz-Signature");
  const signedHeaders = get("X-Amz-SignedHeaders");
  if (
    get("X-Amz-Algorithm") !== "AWS4-HMAC-SHA256" ||
    !credential ||
    !stamp ||
    !signature ||
    !signedHeaders
  ) {
    return null;
  }
  const issued = amzDateMs(stamp);
  if (!Number.isInteger(expires) || expires < 1 || expires > MAX_EXPIRES_S) return null;
  if (!(Date.now() <= issued + expires * 1000 && issued <= Date.now() + MAX_CLOCK_SKEW_MS)) return null;
  const slash = credential.indexOf("/");
  return {
    keyId: credential.slice(0, slash),
    scope: credential.slice(slash + 1),
    stamp,
    signedHeaders: signedHeaders.split(";"),
    signature,
    payloadHash: get("X-Amz-Content-Sha256") ?? "UNSIGNED-PAYLOAD",
    query: pairs.filter(([k]) => k !== "X-Amz-Signature"),
  };
}

/**
 * True when `req` carries a valid SigV4 signature (header or pre-signed query) made with these
 * credentials for the `s3` service, unexpired.
 */
export function validS3Signature(
  req: IncomingMessage,
  credentials: { readonly accessKeyId: string; readonly secretAccessKey: string },
): boolean {
  const signed = parseSigned(req);
  if (!signed || signed.keyId !== credentials.accessKeyId) return false;
  const [day, region, service, terminator, ...rest] = signed.scope.split("/");
  if (!day || !region || service !== "s3" || terminator !== "aws4_request" || rest.length > 0) return false;
  if (!signed.stamp.startsWith(day) || !signed.signedHeaders.includes("host")) return false;
  const rawUrl = req.url ?? "/";
  const at = rawUrl.indexOf("?");
  const path = at < 0 ? rawUrl : rawUrl.slice(0, at);
  const query = signed.query
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const headers: string[] = [];
  for (const name of signed.signedHeaders) {
    const value = req.headers[name];
    if (value === undefined) return false;
    const text = Array.isArray(value) ? value.join(",") : value;
    headers.push(`${name}:${text.trim().replace(/\s+/g, " ")}\n`);
  }
  const canonical = [
    req.method ?? "GET",
    path,
    query,
    headers.join(""),
    signed.signedHeaders.join(";"),
    signed.payloadHash,
  ].join("\n");
  const scope = signed.scope;
  const toSign = `AWS4-HMAC-SHA256\n${signed.stamp}\n${scope}\n${sha256Hex(canonical)}`;
  const key = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), region), "s3"), "aws4_request");
  const expected = hmac(key, toSign);
  const given = Buffer.from(signed.signature, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}
