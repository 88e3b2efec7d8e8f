// The local S3: a real S3-protocol server (@20minutes/s3rver, objects as files under the data
// folder) so the same code and clients (@aws-sdk/client-s3, pre-signed URLs) run locally as in AWS.
// Like the local DynamoDB front and the executor, it accepts only requests signed with the stack's
// start-up access key id (the header's or the pre-signed URL's `Credential=<key id>/...`), checked
// here before s3rver; anything else is 403 AccessDenied, as S3 answers. s3rver's own signature
// check is off: it canonicalizes a bucket-level path (`/bucket/?list-type=2`, as the SDK sends
// ListObjectsV2) without its trailing slash and so refuses valid signatures; its built-in
// `S3RVER` key is revoked all the same.

import { createServer, type IncomingMessage, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";

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
    "<Message>The request is not signed with the local stack's credentials.</Message></Error>"
  );
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
    if (requestKeyId(req) !== opts.credentials.accessKeyId) {
      req.resume();
      res.writeHead(403, { "content-type": "application/xml" }).end(accessDenied());
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
