// Large Python state in S3: one immutable object per episode version whose snapshot is larger than
// what sits inline in its version item. The API never moves these bytes: it gives the executor
// pre-signed URLs (GET for the input state, PUT for the new one) and the executor's runtime parent
// reads and writes S3 itself (in AWS through its VPC's S3 gateway endpoint; locally the local S3
// server, functions/src/local/s3-server.ts). Keys:
//
//   <prefix><tenant>/<episode id>/<incarnation>/<version:10>-<random:16>
//
// A fresh random suffix per step: two racing steps of one version (or a retried step) never
// overwrite each other's object; only the object the committed version item names counts, the
// loser's is deleted by the step that lost (else with the episode, or by the lifecycle rule).
// Objects are immutable, so a fork names its parent's object instead of copying it (its first new
// state is its own object); the parent's partition records the shared key (an `S#<key>` item), and
// deleting the parent deletes every object under its prefix except shared ones, which the
// bucket's lifecycle rule removes (s3-lifecycle.ts). An object reused by a new version (a step that
// left the state unchanged, a fork) is first copied to a fresh key when it is older than
// REUSE_MAX_AGE_MS, so no live episode ever names an object the lifecycle rule may delete.
import { createHash, createHmac, randomBytes } from "node:crypto";
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { StateObjectRef, StateTransfer } from "../core/episode-repository.js";

/**
 * The S3 client of the state store. Pre-signed URLs must not carry a checksum: since v3.729 the SDK
 * signs the CRC32 of the (empty, at signing time) body into a pre-signed PUT by default, and S3
 * then refuses every real body (`AAAAAA==` mismatch). Checksums only when an operation requires
 * them; the executor checks its own SHA-256. An endpoint override (the local S3) is path-style.
 */
export function createStateS3Client(opts: {
  readonly region: string;
  readonly endpoint?: string;
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly requestHandler?: S3ClientConfig["requestHandler"];
}): S3Client {
  return new S3Client({
    region: opts.region,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    ...(opts.endpoint ? { endpoint: opts.endpoint, forcePathStyle: true } : {}),
    ...(opts.credentials ? { credentials: { ...opts.credentials } } : {}),
    ...(opts.requestHandler ? { requestHandler: opts.requestHandler } : {}),
  });
}

export interface S3StateOpts {
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix of every state object. @default "state/" */
  readonly prefix?: string;
  /** How long a pre-signed URL is valid (s): the step limit + transfer time. @default 900 */
  readonly urlExpiresS?: number;
}

/** `event.state` of the executor contract (python-runtime/coding_env_runtime/contract.py). */
export type StateUrls = StateTransfer;

const part = (text: string) => encodeURIComponent(text);

/** RFC 3986 encoding, as SigV4 wants it. */
const rfc3986 = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();

/** Characters a key may hold that SigV4's path encoding leaves as they are. */
const UNRESERVED_PATH = /^[A-Za-z0-9\-._~/]*$/;

/** What signing needs of one set of credentials on one day (it changes at most daily). */
interface SigningScope {
  readonly accessKeyId: string;
  readonly secret: string;
  readonly sessionToken: string | undefined;
  readonly day: string;
  readonly key: Buffer;
  /** `X-Amz-Credential=...&[X-Amz-Security-Token=...&]`, encoded. */
  readonly credentialQuery: string;
  readonly tokenQuery: string;
}

/**
 * SigV4 query pre-signing of one object GET or PUT (`UNSIGNED-PAYLOAD`, only `host` signed), the
 * URL `getSignedUrl` makes (a test compares them byte for byte), without its per-call middleware
 * stack and S3 endpoint rules: about 5 ms per step there, a few microseconds here. The endpoint
 * (origin and path-style or virtual-hosted) is learned once from one URL the SDK signs; the signing
 * key and the encoded query members that only change with the credentials or the day are kept, so
 * a URL costs one hash, one HMAC and string joins.
 */
class ObjectUrlSigner {
  private base: Promise<{ origin: string; host: string; prefix: string; region: string }> | undefined;
  private scope: SigningScope | undefined;
  private stamp: { readonly second: number; readonly value: string } | undefined;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  private learn() {
    this.base ??= (async () => {
      const probe = "probe";
      const url = new URL(
        await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: probe }), {
          expiresIn: 60,
        }),
      );
      const prefix = url.pathname.slice(0, url.pathname.length - probe.length);
      const credential = url.searchParams.get("X-Amz-Credential") ?? "";
      const region = credential.split("/")[2] ?? (await this.client.config.region());
      return { origin: url.origin, host: url.host, prefix, region };
    })().catch((err: unknown) => {
      // Not kept: a failed first signing (credentials not yet there) is tried again next time.
      this.base = undefined;
      throw err;
    });
    return this.base;
  }

  /** `YYYYMMDDTHHMMSSZ` of `now` (computed once per second). */
  private amzDate(now: Date): string {
    const second = Math.floor(now.getTime() / 1000);
    if (this.stamp?.second !== second) {
      const value = now
        .toISOString()
        .replace(/[-:]/g, "")
        .replace(/\.\d{3}/, "");
      this.stamp = { second, value };
    }
    return this.stamp.value;
  }

  private scopeFor(
    credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
    day: string,
    region: string,
  ): SigningScope {
    const cached = this.scope;
    if (
      cached &&
      cached.day === day &&
      cached.accessKeyId === credentials.accessKeyId &&
      cached.secret === credentials.secretAccessKey &&
      cached.sessionToken === credentials.sessionToken
    ) {
      return cached;
    }
    const key = hmac(
      hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), region), "s3"),
      "aws4_request",
    );
    const credential = `${credentials.accessKeyId}/${day}/${region}/s3/aws4_request`;
    this.scope = {
      accessKeyId: credentials.accessKeyId,
      secret: credentials.secretAccessKey,
      sessionToken: credentials.sessionToken,
      day,
      key,
      credentialQuery: `X-Amz-Credential=${rfc3986(credential)}&`,
      tokenQuery: credentials.sessionToken
        ? `X-Amz-Security-Token=${rfc3986(credentials.sessionToken)}&`
        : "",
    };
    return this.scope;
  }

  async sign(method: "GET" | "PUT", key: string, expiresS: number, now = new Date()): Promise<string> {
    const base = await this.learn();
    const credentials = await this.client.config.credentials();
    const stamp = this.amzDate(now);
    const day = stamp.slice(0, 8);
    const scope = this.scopeFor(credentials, day, base.region);
    const encodedKey = UNRESERVED_PATH.test(key) ? key : key.split("/").map(rfc3986).join("/");
    const path = `${base.prefix}${encodedKey}`;
    // The query members in SigV4's (sorted) order; the signature goes before SignedHeaders in the
    // URL, as the SDK writes it.
    const head = `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&${scope.credentialQuery}X-Amz-Date=${stamp}&X-Amz-Expires=${expiresS}&${scope.tokenQuery}`;
    const tail = `X-Amz-SignedHeaders=host&x-id=${method === "GET" ? "GetObject" : "PutObject"}`;
    const canonical = `${method}\n${path}\n${head}${tail}\nhost:${base.host}\n\nhost\nUNSIGNED-PAYLOAD`;
    const toSign = `AWS4-HMAC-SHA256\n${stamp}\n${day}/${base.region}/s3/aws4_request\n${createHash("sha256").update(canonical).digest("hex")}`;
    const signature = hmac(scope.key, toSign).toString("hex");
    return `${base.origin}${path}?${head}X-Amz-Signature=${signature}&${tail}`;
  }
}

export class S3StateStore {
  readonly bucket: string;
  private readonly prefix: string;
  private readonly urlExpiresS: number;

  private readonly signer: ObjectUrlSigner;

  constructor(private readonly opts: S3StateOpts) {
    this.signer = new ObjectUrlSigner(opts.client, opts.bucket);
    this.bucket = opts.bucket;
    this.prefix = opts.prefix ?? "state/";
    this.urlExpiresS = opts.urlExpiresS ?? 900;
  }

  /** The prefix of every object of one tenant. */
  tenantPrefix(tenantId: string): string {
    return `${this.prefix}${part(tenantId)}/`;
  }

  /** The episode id whose prefix holds `key` (a fork's version may name its source's object). */
  ownerOf(tenantId: string, key: string): string | null {
    const prefix = this.tenantPrefix(tenantId);
    if (!key.startsWith(prefix)) return null;
    const end = key.indexOf("/", prefix.length);
    return end > prefix.length ? decodeURIComponent(key.slice(prefix.length, end)) : null;
  }

  /** The prefix of every object of one episode (all incarnations). */
  episodePrefix(tenantId: string, episodeId: string): string {
    return `${this.prefix}${part(tenantId)}/${part(episodeId)}/`;
  }

  /** A new, never used key for the state of `version`. */
  newKey(tenantId: string, episodeId: string, incarnation: string, version: number): string {
    const suffix = randomBytes(8).toString("hex");
    return `${this.episodePrefix(tenantId, episodeId)}${part(incarnation || "-")}/${String(version).padStart(10, "0")}-${suffix}`;
  }

  /** Whether `key` belongs to the episode (a fork's first versions name its parent's objects). */
  owns(tenantId: string, episodeId: string, key: string): boolean {
    return key.startsWith(this.episodePrefix(tenantId, episodeId));
  }

  /** A pre-signed GET of `key` (`now`: the signing time, for tests). */
  presignGet(key: string, now?: Date): Promise<string> {
    return this.signer.sign("GET", key, this.urlExpiresS, now);
  }

  /** A pre-signed PUT of `key` (no checksum: see {@link createStateS3Client}). */
  presignPut(key: string, now?: Date): Promise<string> {
    return this.signer.sign("PUT", key, this.urlExpiresS, now);
  }

  /**
   * The executor's `state` for one step: where its input state is (`input`, or none when it is
   * inline or fresh, with the size and SHA-256 the executor checks), where a new state over
   * `inlineMaxBytes` goes (a new key of `version`), and the largest state it may keep.
   */
  async stateUrls(input: {
    tenantId: string;
    episodeId: string;
    incarnation: string;
    version: number;
    input: StateObjectRef | null;
    inlineMaxBytes: number;
    maxBytes: number;
  }): Promise<StateUrls> {
    const putKey = this.newKey(input.tenantId, input.episodeId, input.incarnation, input.version);
    const [getUrl, putUrl] = await Promise.all([
      input.input ? this.presignGet(input.input.key) : undefined,
      this.presignPut(putKey),
    ]);
    return {
      ...(getUrl && input.input
        ? {
            get_url: getUrl,
            get_ref: input.input.key,
            get_bytes: input.input.bytes,
            get_sha256: input.input.sha256,
          }
        : {}),
      put_url: putUrl,
      put_ref: putKey,
      inline_max_bytes: input.inlineMaxBytes,
      max_bytes: input.maxBytes,
    };
  }

  /** Deletes one object (a step's object that did not commit); a missing one is no error. */
  async deleteObject(key: string): Promise<void> {
    await this.opts.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /** The object's bytes (fork checks, tests; steps never read state through the API). */
  async read(key: string): Promise<Uint8Array> {
    const out = await this.opts.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    if (!out.Body) throw new Error(`state object ${key} has no body`);
    return out.Body.transformToByteArray();
  }

  /**
   * Copies an object to a fresh key under the episode's prefix (server-side: no bytes through the
   * API) and returns the new key: done when a new version would name an object older than
   * {@link REUSE_MAX_AGE_MS}, so its lifecycle restarts.
   */
  async adopt(
    key: string,
    tenantId: string,
    episodeId: string,
    incarnation: string,
    version: number,
  ): Promise<string> {
    const target = this.newKey(tenantId, episodeId, incarnation, version);
    await this.opts.client.send(
      new CopyObjectCommand({
        Bucket: this.bucket,
        Key: target,
        CopySource: `${this.bucket}/${encodeURI(key)}`,
      }),
    );
    return target;
  }

  /** The keys of one episode's objects. */
  async listEpisode(tenantId: string, episodeId: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.opts.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.episodePrefix(tenantId, episodeId),
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  /** Deletes every object of one episode but those in `keep` (shared with forks); returns how many. */
  async deleteEpisode(
    tenantId: string,
    episodeId: string,
    keep: ReadonlySet<string> = new Set(),
  ): Promise<number> {
    const keys = (await this.listEpisode(tenantId, episodeId)).filter((key) => !keep.has(key));
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      await this.opts.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
    }
    return keys.length;
  }
}
