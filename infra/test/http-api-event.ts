// An API Gateway HTTP API (payload v2) event, as API Gateway sends it to the API function: the
// bundle tests invoke the staged handler with these.

/** An API Gateway HTTP API payload v2 event, as API Gateway sends it to the function. */
export function httpApiEvent(
  method: string,
  rawPath: string,
  headers: Record<string, string> = {},
  body?: string,
  rawQueryString = "",
) {
  const now = Date.now();
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath,
    rawQueryString,
    headers: {
      accept: "application/json",
      host: "abc123.execute-api.us-east-1.amazonaws.com",
      "user-agent": "coding-env-infra-test",
      "x-forwarded-for": "203.0.113.9",
      "x-forwarded-port": "443",
      "x-forwarded-proto": "https",
      ...headers,
    },
    requestContext: {
      accountId: "123456789012",
      apiId: "abc123",
      domainName: "abc123.execute-api.us-east-1.amazonaws.com",
      domainPrefix: "abc123",
      http: {
        method,
        path: rawPath,
        protocol: "HTTP/1.1",
        sourceIp: "203.0.113.9",
        userAgent: "coding-env-infra-test",
      },
      requestId: `req-${now}`,
      routeKey: "$default",
      stage: "$default",
      time: new Date(now).toUTCString(),
      timeEpoch: now,
    },
    ...(body === undefined ? {} : { body, isBase64Encoded: false }),
    isBase64Encoded: false,
  };
}
