// A stand-in for API Gateway's WebSocket API, for tests: it loads a Lambda bundle's handler (the
// esbuild bundle as deployed) and drives it the way API Gateway does, with Lambda proxy events:
// $connect on the upgrade (a non-2xx result refuses the handshake with that status and body),
// $default per text message (the result's body is sent back: the route response), $disconnect
// when the socket closes. Messages over API Gateway's 128 KB close the connection with 1009, as
// API Gateway does. It also serves the stand-in of the management API on the same port:
// `DELETE /<stage>/@connections/<id>` closes that connection, `POST` sends to it; the calls it
// received are listed at `GET /calls`. This is not API Gateway: only what the tests rely on.
//
//   node api-gateway-websocket-standin.mjs <bundle index.mjs> <ws module dir>
// prints `LISTENING <port>`; the bundle's environment comes from this process's environment.
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [bundlePath, wsModuleDir] = process.argv.slice(2);
const STAGE = "ws";
const MESSAGE_LIMIT = 128 * 1024;
const { WebSocketServer } = await import(pathToFileURL(join(wsModuleDir, "index.js")).href).then(
  (m) => m.default ?? m,
);

const server = createServer();
const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
const sockets = new Map();
const calls = [];
let handler;

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
function lambdaContext() {
  const deadline = Date.now() + 28_000;
  return {
    getRemainingTimeInMillis: () => deadline - Date.now(),
    awsRequestId: randomBytes(8).toString("hex"),
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
  const connect = await handler(
    {
      requestContext: requestContext("$connect", "CONNECT", connectionId, host),
      headers: headersOf(req),
      queryStringParameters: Object.keys(query).length > 0 ? query : null,
      isBase64Encoded: false,
    },
    lambdaContext(),
  );
  if (connect.statusCode < 200 || connect.statusCode > 299) {
    const body = connect.body ?? "";
    socket.end(
      `HTTP/1.1 ${connect.statusCode} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    sockets.set(connectionId, ws);
    ws.on("message", async (data, isBinary) => {
      if (data.length > MESSAGE_LIMIT) {
        ws.close(1009, "Message too big");
        return;
      }
      const result = await handler(
        {
          requestContext: requestContext("$default", "MESSAGE", connectionId, host),
          body: isBinary ? data.toString("base64") : data.toString("utf8"),
          isBase64Encoded: isBinary,
        },
        lambdaContext(),
      );
      if (result?.body !== undefined && ws.readyState === ws.OPEN) ws.send(result.body);
    });
    ws.on("close", async () => {
      sockets.delete(connectionId);
      await handler(
        { requestContext: requestContext("$disconnect", "DISCONNECT", connectionId, host) },
        lambdaContext(),
      );
      calls.push({ method: "$disconnect", connectionId });
    });
  });
});

server.listen(0, "127.0.0.1", async () => {
  const { port } = server.address();
  process.env.CODING_ENV_WS_MANAGEMENT_ENDPOINT = `http://127.0.0.1:${port}/${STAGE}`;
  ({ handler } = await import(pathToFileURL(bundlePath).href));
  process.stdout.write(`LISTENING ${port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
