// A stand-in for API Gateway's WebSocket API, for tests: it loads a Lambda bundle's handler (the
// esbuild bundle as deployed) and drives it the way API Gateway does, with Lambda proxy events:
// $connect on the upgrade (a non-2xx result refuses the handshake with that status and body),
// $default per text message (the result's body is sent back: the route response), $disconnect
// when the socket closes. It also serves the stand-in of the management API on the same port:
// `DELETE /<stage>/@connections/<id>` closes that connection, `POST` sends to it; the calls it
// received, and which handler instance served each event, are listed at `GET /calls`. This is
// not API Gateway: only what the tests rely on.
//
// - Instances: `STANDIN_INSTANCES` (default 1) copies of the handler, each in its own worker
//   thread (its own module state, as separate Lambda execution environments), take each
//   connection's events in turn: with 2, consecutive events of a connection land on different ones.
// - Limits as API Gateway documents them (quotas of WebSocket APIs): a frame over 32 KB, or a
//   message over 128 KB, closes the connection with 1009 "Message too big"; the handler never
//   sees it.
// - The Lambda context's remaining time starts at 28 s (the function's timeout), or at the
//   `x-standin-remaining-ms` handshake header's value for that connection's events.
//
//   node api-gateway-websocket-standin.mjs <bundle index.mjs> <ws module dir>
// prints `LISTENING <port>`; the bundle's environment comes from this process's environment.
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

const [bundlePath, wsModuleDir] = process.argv.slice(2);
const STAGE = "ws";
const FRAME_LIMIT = 32 * 1024;
const MESSAGE_LIMIT = 128 * 1024;
const FUNCTION_TIMEOUT_MS = 28_000;
const INSTANCES = Math.max(1, Number(process.env.STANDIN_INSTANCES) || 1);
const ws = await import(pathToFileURL(join(wsModuleDir, "index.js")).href).then((m) => m.default ?? m);
const { WebSocketServer, Receiver } = ws;

// API Gateway's frame and message limits, checked where `ws` reads each frame's length (its
// Receiver's private `haveLength` step; `maxPayload` alone limits whole messages only).
const haveLength = Receiver.prototype.haveLength;
Receiver.prototype.haveLength = function checkApiGatewayLimits(cb) {
  const dataFrame = this._opcode < 0x08;
  if (
    dataFrame &&
    (this._payloadLength > FRAME_LIMIT || this._totalPayloadLength + this._payloadLength > MESSAGE_LIMIT)
  ) {
    const socketOf = Object.getOwnPropertySymbols(this).find((s) => s.description === "websocket");
    this[socketOf]?.close(1009, "Message too big");
    cb(this.createError(RangeError, "Message too big", false, 1009, "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH"));
    return;
  }
  haveLength.call(this, cb);
};

// One handler instance per worker thread; `invoke` sends it an event, the worker answers the result.
const INSTANCE_SCRIPT = `
const { parentPort, workerData } = require("node:worker_threads");
const { randomBytes } = require("node:crypto");
const loaded = import(workerData.bundleUrl);
parentPort.on("message", async ({ id, event, remainingMs }) => {
  const deadline = Date.now() + remainingMs;
  const context = {
    getRemainingTimeInMillis: () => deadline - Date.now(),
    awsRequestId: randomBytes(8).toString("hex"),
  };
  try {
    const { handler } = await loaded;
    parentPort.postMessage({ id, result: (await handler(event, context)) ?? null });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.stack ? err.stack : err) });
  }
});
`;
let instances = [];
const turns = new Map();
let nextStart = 0;
let nextInvocation = 0;
const waiting = new Map();

function startInstances() {
  instances = Array.from({ length: INSTANCES }, () => {
    const worker = new Worker(INSTANCE_SCRIPT, {
      eval: true,
      workerData: { bundleUrl: pathToFileURL(bundlePath).href },
    });
    worker.on("message", ({ id, result, error }) => {
      const pending = waiting.get(id);
      waiting.delete(id);
      if (error) pending?.reject(new Error(error));
      else pending?.resolve(result);
    });
    return worker;
  });
}

const server = createServer();
const wss = new WebSocketServer({ noServer: true });
const sockets = new Map();
const calls = [];

/** Invokes the next instance in turn with `event`, as API Gateway's Lambda proxy integration. */
function invoke(event, remainingMs) {
  const { routeKey, connectionId } = event.requestContext;
  // Per connection in turn (not globally), so other connections' events cannot line two of this
  // connection's events up on one instance.
  const turn = turns.get(connectionId) ?? nextStart++;
  if (routeKey === "$disconnect") turns.delete(connectionId);
  else turns.set(connectionId, turn + 1);
  const instance = turn % instances.length;
  calls.push({ route: routeKey, connectionId, instance });
  const id = nextInvocation++;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    instances[instance].postMessage({ id, event, remainingMs });
  });
}

function requestContext(routeKey, eventType, connectionId, host) {
  return {
    routeKey,
    eventType,
    connectionId,
    domainName: host,
    stage: STAGE,
    apiId: "standin",
    requestId: randomBytes(8).toString("hex"),
  };
}
function headersOf(req) {
  const headers = {};
  for (const [name, value] of Object.entries(req.headers))
    headers[name] = Array.isArray(value) ? value.join(",") : value;
  return headers;
}

server.on("request", (req, res) => {
  const url = new URL(req.url, "http://standin");
  if (req.method === "GET" && url.pathname === "/calls") {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(calls));
    return;
  }
  const match = /^\/([^/]+)\/@connections\/([^/]+)$/.exec(url.pathname);
  if (!match || match[1] !== STAGE) {
    res.statusCode = 404;
    res.end();
    return;
  }
  const connectionId = decodeURIComponent(match[2]);
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    calls.push({
      method: req.method,
      connectionId,
      signed: /^AWS4-HMAC-SHA256 /.test(req.headers.authorization ?? ""),
    });
    const socket = sockets.get(connectionId);
    if (!socket) {
      res.statusCode = 410;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ message: "Gone" }));
      return;
    }
    if (req.method === "DELETE") socket.close(1000, "closed by the server");
    else if (req.method === "POST") socket.send(Buffer.concat(chunks).toString("utf8"));
    res.statusCode = req.method === "DELETE" ? 204 : 200;
    res.end();
  });
});

server.on("upgrade", async (req, socket, head) => {
  const url = new URL(req.url, "http://standin");
  if (url.pathname !== `/${STAGE}`) {
    socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
    return;
  }
  const connectionId = `${randomBytes(9).toString("base64url")}=`;
  const host = req.headers.host;
  const query = Object.fromEntries(url.searchParams);
  const remainingMs = Number(req.headers["x-standin-remaining-ms"]) || FUNCTION_TIMEOUT_MS;
  const connect = await invoke(
    {
      requestContext: requestContext("$connect", "CONNECT", connectionId, host),
      headers: headersOf(req),
      queryStringParameters: Object.keys(query).length > 0 ? query : null,
      isBase64Encoded: false,
    },
    remainingMs,
  );
  if (connect.statusCode < 200 || connect.statusCode > 299) {
    const body = connect.body ?? "";
    socket.end(
      `HTTP/1.1 ${connect.statusCode} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    return;
  }
  wss.handleUpgrade(req, socket, head, (client) => {
    sockets.set(connectionId, client);
    client.on("error", () => {}); // a limit's 1009 close; the close event follows
    client.on("message", async (data, isBinary) => {
      const result = await invoke(
        {
          requestContext: requestContext("$default", "MESSAGE", connectionId, host),
          body: isBinary ? data.toString("base64") : data.toString("utf8"),
          isBase64Encoded: isBinary,
        },
        remainingMs,
      );
      if (result?.body !== undefined && client.readyState === client.OPEN) client.send(result.body);
    });
    client.on("close", async () => {
      sockets.delete(connectionId);
      await invoke(
        { requestContext: requestContext("$disconnect", "DISCONNECT", connectionId, host) },
        remainingMs,
      );
    });
  });
});

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  // Before the instances start: each worker copies this process's environment.
  process.env.CODING_ENV_WS_MANAGEMENT_ENDPOINT = `http://127.0.0.1:${port}/${STAGE}`;
  startInstances();
  process.stdout.write(`LISTENING ${port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
