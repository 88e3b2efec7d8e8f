// Large Python state in S3: one immutable object per episode version whose snapshot is larger than
// what sits inline in its version item. The API never moves these bytes: it gives the executor
// pre-signed URLs (GET for the input state, PUT for the new one) and the executor's runtime parent
// reads and writes S3 itself (in AWS through its VPC's S3 gateway endpoint; locally the local S3
// server, functions/src/local/s3-server.ts). Keys:
//
//   <prefix><tenant>/<episode id>/<incarnation>/<version:10>-<random:16>
//
// A fresh random suffix per step: two racing steps of one version never overwrite each other's
// object (the loser's is deleted with the episode, or by the bucket's lifecycle rule). Objects are
// immutable, so a fork can name its parent's object instead of copying it (its own first new state
// is its own object). `deleteEpisode` deletes the objects under the episode's own prefix; an object
// a live fork still names must first be copied under the fork (`adopt`, a server-side copy): the
// core does not do that yet (it does not use this store yet; see docs/DATA-MODEL.md).
import { randomBytes } from "node:crypto";
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

export interface S3StateOpts {
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix of every state object. @default "state/" */
  readonly prefix?: string;
  /** How long a pre-signed URL is valid (s): the step limit + transfer time. @default 900 */
  readonly urlExpiresS?: number;
}

/** `event.state` of the executor contract (python-runtime/coding_env_runtime/contract.py). */
export interface StateUrls {
  readonly get_url?: string;
  readonly get_ref?: string;
  readonly put_url: string;
  readonly put_ref: string;
  readonly inline_max_bytes: number;
}

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
   * The executor's `state` for one step: where its input state is (`inputKey`, or none when it
   * is inline or fresh) and where a new state over `inlineMaxBytes` goes (a new key of `version`).
   */
  async stateUrls(input: {
    tenantId: string;
    episodeId: string;
    incarnation: string;
    version: number;
    inputKey: string | null;
    inlineMaxBytes: number;
  }): Promise<StateUrls> {
    const putKey = this.newKey(input.tenantId, input.episodeId, input.incarnation, input.version);
    const [getUrl, putUrl] = await Promise.all([
      input.inputKey ? this.presignGet(input.inputKey) : undefined,
      this.presignPut(putKey),
    ]);
    return {
      ...(getUrl && input.inputKey ? { get_url: getUrl, get_ref: input.inputKey } : {}),
      put_url: putUrl,
      put_ref: putKey,
      inline_max_bytes: input.inlineMaxBytes,
    };
  }

  /** The object's bytes (fork checks, tests; steps never read state through the API). */
  async read(key: string): Promise<Uint8Array> {
    const out = await this.opts.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    if (!out.Body) throw new Error(`state object ${key} has no body`);
    return out.Body.transformToByteArray();
  }

  /**
   * Copies a shared object under the adopting episode's prefix (server-side: no bytes through the
   * API) and returns the new key: done for the objects a fork still names before their owner is
   * deleted.
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

  /** Deletes every object of one episode; returns how many. */
  async deleteEpisode(tenantId: string, episodeId: string): Promise<number> {
    const keys = await this.listEpisode(tenantId, episodeId);
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
