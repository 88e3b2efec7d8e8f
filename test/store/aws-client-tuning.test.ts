// The tuned SDK clients send the same requests as untuned ones: same user agent (but the SDK's
// per-call feature list), same headers otherwise, same answers. Real clients against a real HTTP
// endpoint that records what it receives and answers as DynamoDB would.
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tuneAwsClient } from "../../functions/src/store/aws-client-tuning.js";

let server: Server;
let endpoint: string;
const received: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push(req.headers);
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/x-amz-json-1.0" });
      res.end(JSON.stringify({ Item: { pk: { S: "a" }, n: { N: "7" } } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" };

/** The headers of one GetItem through `client`, and its answer. */
async function getItem(client: DynamoDBClient): Promise<{ headers: IncomingHttpHeaders; item: unknown }> {
  received.length = 0;
  const out = await client.send(new GetItemCommand({ TableName: "t", Key: { pk: { S: "a" } } }));
  return { headers: received[0] as IncomingHttpHeaders, item: out.Item };
}

/** A user agent without the SDK's per-call feature section (`m/...`). */
const withoutFeatures = (ua: string | undefined) =>
  (ua ?? "")
    .split(" ")
    .filter((s) => !s.startsWith("m/"))
    .join(" ");

describe("tuneAwsClient", () => {
  // An application id (AWS_SDK_UA_APP_ID, which Powertools sets when imported) ends the user agent.
  it.each([
    ["no application id", {}],
    ["an application id", { userAgentAppId: "PT/NO-OP/2.36.0" }],
  ])(
    "sends the SDK's own user agent (less its feature list), with %s, and the same other headers and answers",
    async (_name, appId) => {
      const opts = { region: "us-east-1", endpoint, credentials, cacheMiddleware: true, ...appId };
      const plain = new DynamoDBClient(opts);
      const tuned = tuneAwsClient(new DynamoDBClient(opts));
      try {
        for (let call = 0; call < 3; call++) {
          const a = await getItem(plain);
          const b = await getItem(tuned);
          expect(b.item).toEqual(a.item);
          expect(b.headers["user-agent"]).toBe(withoutFeatures(a.headers["user-agent"]));
          expect(b.headers["user-agent"]).toMatch(
            /^aws-sdk-js\/[\d.]+ ua\/2\.1 os\/\S+ lang\/js md\/nodejs#/,
          );
          // The SDK's own middleware (which adds the feature list) is the one replaced.
          expect(a.headers["user-agent"]).toMatch(/ m\//);
          expect(b.headers["user-agent"]).not.toMatch(/ m\//);
          expect(b.headers["x-amz-user-agent"]).toBe(a.headers["x-amz-user-agent"]);
          const rest = (h: IncomingHttpHeaders) => {
            const {
              "user-agent": _ua,
              "amz-sdk-invocation-id": _id,
              "x-amz-date": _date,
              authorization,
              ...others
            } = h;
            // The signature covers the user agent and the date; what it signs is the same.
            return { ...others, signedHeaders: /SignedHeaders=([^,]+)/.exec(String(authorization))?.[1] };
          };
          expect(rest(b.headers)).toEqual(rest(a.headers));
        }
      } finally {
        plain.destroy();
        tuned.destroy();
      }
    },
  );

  it("keeps the client's config (the same object, the same values) and works for any service's client", async () => {
    const lambda = new LambdaClient({ region: "eu-west-1", endpoint, credentials });
    const config = lambda.config;
    const before = { ...config };
    expect(tuneAwsClient(lambda)).toBe(lambda);
    expect(lambda.config).toBe(config);
    expect({ ...lambda.config }).toEqual(before);
    expect(await lambda.config.region()).toBe("eu-west-1");
    lambda.destroy();
  });
});
