// The local S3: a real S3-protocol server (@20minutes/s3rver, objects as files under the data
// folder) so the same code and clients (@aws-sdk/client-s3, pre-signed URLs) run locally as in AWS.
// It accepts only requests signed with the stack's start-up credentials, with a SigV4 signature
// checked here before s3rver (the header's, or the pre-signed URL's, unexpired: sigv4-check.ts);
// anything else is 403 AccessDenied, as S3 answers. The key id alone is not enough: it is part of
// every pre-signed URL, and a URL whose path or query was changed must open nothing, as in AWS
// (user code in Lambda mode reaches this server through the harness's S3 gateway stand-in).
// s3rver's own signature check is off: it canonicalizes a bucket-level path
// (`/bucket/?list-type=2`, as the SDK sends ListObjectsV2) without its trailing slash and so refuses valid signatures; its built-in
// `S3RVER` key is revoked all the same.
//
// Plain object PUTs and GETs (what the executor does with pre-signed URLs, hundreds of MiB per
// step) are served here, in s3rver's own file layout (s3rver still lists, deletes and copies them):
// s3rver pipes a body through Koa and an MD5 in 64 KB pieces (about 1 s per 100 MiB on the dev
// VM); this path writes it with 1 MiB pieces to a temporary file renamed into place (a reader
// never sees half an object). The ETag of such an object is a random id, not the body's MD5
// (nothing here reads it as one). A pre-signed PUT carrying `x-amz-checksum-crc32` is checked as S3
// checks it: the SDK's default signs the CRC32 of an empty body into pre-signed PUTs, which real S3
// refuses for any real body, so the local S3 must refuse it too (see s3-state.ts).

import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, promises as fs } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { crc32 } from "node:zlib";
import { validS3Signature } from "./sigv4-check.js";

const require = createRequire(import.meta.url);

interface S3rverInstance {
  configureBuckets(): Promise<unknown>;
  callback(): (req: IncomingMessage, res: import("node:http").ServerResponse) => void;
  logger: { exceptions: { unhandle(): void }; close(): void };
}
type S3rverClass = new (opts: Record<string, unknown>) => S3rverInstance;
interface AwsAccountModule {
  DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void; revokeAccessKey(id: string): void };
}

export interface LocalS3Opts {
  /** Where objects are kept (a folder; it survives a restart of the stack). */
  readonly directory: string;
  /** The bucket to create (if missing). */
  readonly bucket: string;
  /** The stack's start-up credentials: the only ones accepted. */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** @default 0 (any free port) */
  readonly port?: number;
}

export interface LocalS3 {
  /** `http://127.0.0.1:<port>`: the S3 endpoint override (path-style addressing). */
  readonly endpoint: string;
  close(): Promise<void>;
}

const CREDENTIAL = /Credential=([^/,\s]+)\//;

/** The access key id a request was signed with (header or pre-signed query), if any. */
export function requestKeyId(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (typeof header === "string") return CREDENTIAL.exec(header)?.[1];
  const query = new URL(req.url ?? "/", "http://local").searchParams.get("X-Amz-Credential");
  return query ? query.split("/")[0] : undefined;
}

function accessDenied(): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>' +
    "<Message>The request is not validly signed with the local stack's credentials.</Message></Error>"
  );
}

const S3RVER_SUFFIX = "._S3rver_";
/** Query parameters of a plain GetObject/PutObject (signing, the SDK's id); anything else goes to s3rver. */
const PLAIN_QUERY = /^(x-amz-[a-z0-9-]+|x-id)$/i;

/** The key of a plain object GET/PUT of `bucket` (path-style), or null for anything else. */
function plainObjectKey(req: IncomingMessage, bucket: string): string | null {
  const url = new URL(req.url ?? "/", "http://local");
  const prefix = `/${bucket}/`;
  if (!url.pathname.startsWith(prefix) || url.pathname.length === prefix.length) return null;
  for (const name of url.searchParams.keys()) if (!PLAIN_QUERY.test(name)) return null;
  if (req.headers["x-amz-copy-source"] !== undefined || req.headers.range !== undefined) return null;
  const key = decodeURIComponent(url.pathname.slice(prefix.length));
  const parts = key.split("/");
  if (parts.some((p) => p === "" || p === "." || p === "..") || key.includes("\0")) return null;
  return key;
}

/** s3rver's file of `key` (`<dir>/<bucket>/<key dirs>/<name>._S3rver_<resource>`). */
function resourcePath(directory: string, bucket: string, key: string, resource: string): string {
  const parts = key.split("/");
  const name = parts.pop() ?? "";
  return join(directory, bucket, ...parts, `${name}${S3RVER_SUFFIX}${resource}`);
}

function xmlError(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res
    .writeHead(status, { "content-type": "application/xml" })
    .end(
      `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`,
    );
}

function failed(res: ServerResponse, err: unknown): void {
  if ((err as { code?: string }).code === "ENOENT") {
    xmlError(res, 404, "NoSuchKey", "The specified key does not exist.");
    return;
  }
  xmlError(res, 500, "InternalError", "We encountered an internal error. Please try again.");
}

async function putObject(
  directory: string,
  bucket: string,
  key: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const query = new URL(req.url ?? "/", "http://local").searchParams;
  const checksums = [...query.keys()].filter(
    (n) => /^x-amz-checksum-/i.test(n) && n !== "x-amz-checksum-mode",
  );
  const expectedCrc = query.get("x-amz-checksum-crc32");
  if (checksums.some((n) => n.toLowerCase() !== "x-amz-checksum-crc32")) {
    req.resume();
    xmlError(res, 501, "NotImplemented", "The local S3 checks only x-amz-checksum-crc32.");
    return;
  }
  const target = resourcePath(directory, bucket, key, "object");
  await fs.mkdir(dirname(target), { recursive: true });
  const temporary = `${target}.${randomBytes(6).toString("hex")}.part`;
  const out = createWriteStream(temporary, { highWaterMark: 1024 * 1024 });
  let crc = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      req.on("data", (chunk: Buffer) => {
        if (expectedCrc !== null) crc = crc32(chunk, crc);
        if (!out.write(chunk)) {
          req.pause();
          out.once("drain", () => req.resume());
        }
      });
      req.on("end", () => out.end(resolve));
      req.on("error", reject);
      out.on("error", reject);
    });
    if (expectedCrc !== null) {
      const actual = Buffer.alloc(4);
      actual.writeUInt32BE(crc >>> 0);
      if (actual.toString("base64") !== expectedCrc) {
        await fs.rm(temporary, { force: true });
        xmlError(res, 400, "BadDigest", "The CRC32 you specified did not match the calculated checksum.");
        return;
      }
    }
    const etag = randomBytes(16).toString("hex");
    const contentType = String(req.headers["content-type"] ?? "binary/octet-stream");
    await fs.writeFile(resourcePath(directory, bucket, key, "object.md5"), etag);
    await fs.writeFile(
      resourcePath(directory, bucket, key, "metadata.json"),
      JSON.stringify({ "content-type": contentType }),
    );
    await fs.rename(temporary, target);
    res.writeHead(200, { etag: JSON.stringify(etag), "content-length": "0" }).end();
  } catch (err) {
    out.destroy();
    await fs.rm(temporary, { force: true });
    throw err;
  }
}

async function getObject(
  directory: string,
  bucket: string,
  key: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const path = resourcePath(directory, bucket, key, "object");
  const handle = await fs.open(path, "r");
  try {
    const stat = await handle.stat();
    const etag = await fs
      .readFile(resourcePath(directory, bucket, key, "object.md5"), "utf8")
      .catch(() => `${stat.size.toString(16)}-${Math.trunc(stat.mtimeMs).toString(16)}`);
    const meta = await fs
      .readFile(resourcePath(directory, bucket, key, "metadata.json"), "utf8")
      .then((text) => JSON.parse(text) as Record<string, string>)
      .catch(() => ({}) as Record<string, string>);
    res.writeHead(200, {
      "content-length": String(stat.size),
      "content-type": meta["content-type"] ?? "binary/octet-stream",
      etag: JSON.stringify(etag),
      "last-modified": stat.mtime.toUTCString(),
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    const stream = createReadStream("", { fd: handle, highWaterMark: 1024 * 1024, autoClose: false });
    await new Promise<void>((resolve, reject) => {
      stream.on("error", reject);
      res.on("close", resolve);
      stream.pipe(res);
    });
  } finally {
    await handle.close();
  }
}

export async function startLocalS3(opts: LocalS3Opts): Promise<LocalS3> {
  const S3rver = require("@20minutes/s3rver") as S3rverClass;
  const account = require("@20minutes/s3rver/lib/models/account") as AwsAccountModule;
  account.DUMMY_ACCOUNT.revokeAccessKey("S3RVER");
  account.DUMMY_ACCOUNT.createKeyPair(opts.credentials.accessKeyId, opts.credentials.secretAccessKey);
  const s3 = new S3rver({
    silent: true,
    directory: opts.directory,
    vhostBuckets: false,
    allowMismatchedSignatures: true,
    configureBuckets: [{ name: opts.bucket }],
  });
  await s3.configureBuckets();
  const handle = s3.callback();
  const server: Server = createServer((req, res) => {
    if (!validS3Signature(req, opts.credentials)) {
      req.resume();
      res.writeHead(403, { "content-type": "application/xml" }).end(accessDenied());
      return;
    }
    const key = plainObjectKey(req, opts.bucket);
    if (key !== null && req.method === "PUT") {
      putObject(opts.directory, opts.bucket, key, req, res).catch((err: unknown) => failed(res, err));
      return;
    }
    if (key !== null && (req.method === "GET" || req.method === "HEAD")) {
      getObject(opts.directory, opts.bucket, key, req, res).catch((err: unknown) => failed(res, err));
      return;
    }
    handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        account.DUMMY_ACCOUNT.revokeAccessKey(opts.credentials.accessKeyId);
        s3.logger.exceptions.unhandle();
        s3.logger.close();
      }),
  };
}
