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
import { randomBytes } from "node:crypto";
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
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

export class S3StateStore {
  readonly bucket: string;
  private readonly prefix: string;
  private readonly urlExpiresS: number;

  constructor(private readonly opts: S3StateOpts) {
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

  presignGet(key: string): Promise<string> {
    return getSignedUrl(this.opts.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
      expiresIn: this.urlExpiresS,
    });
  }

  presignPut(key: string): Promise<string> {
    return getSignedUrl(this.opts.client, new PutObjectCommand({ Bucket: this.bucket, Key: key }), {
      expiresIn: this.urlExpiresS,
    });
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
