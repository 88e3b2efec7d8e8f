// The API function's own function URL, the cheapest door for SDK clients (issue 11 point 4): what the
// template holds for it, what bounds it in place of API Gateway's stage throttling, how it is
// monitored, and the switch that removes it. Synthesis runs offline, without Docker.
import { App, Stack } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import { afterAll, describe, expect, it } from "vitest";
import { functionUrlAccessFields, isFunctionUrlEvent } from "../../functions/src/function-url.js";
import {
  CodingEnvironment,
  CodingEnvironmentPropsError,
  DEFAULT_API_RESERVED_CONCURRENCY,
} from "../lib/coding-environment.js";
import { ContextValueError } from "../lib/config.js";
import { onlyResource, propsOf, removeSynthOutputs, resourcesOfType, runsAs, synth } from "./synth.js";

afterAll(removeSynthOutputs);

const isApi = runsAs("coding-env-api");

describe("the API function's function URL (default deployment)", () => {
  const s = synth();
  const [apiId, api] = onlyResource(s.json, "AWS::Lambda::Function", isApi);

  it("is on the API function: auth type NONE (the API checks its own keys), buffered, no CORS configuration of its own", () => {
    s.template.resourceCountIs("AWS::Lambda::Url", 1);
    s.template.hasResourceProperties("AWS::Lambda::Url", {
      TargetFunctionArn: { "Fn::GetAtt": [apiId, "Arn"] },
      AuthType: "NONE",
      InvokeMode: "BUFFERED",
      // The API answers CORS itself (browser-guards.ts); Lambda's configuration would replace it.
      Cors: Match.absent(),
    });
  });

  it("lets anyone invoke the API function through its URL only (both permissions Lambda requires for auth type NONE)", () => {
    s.template.hasResourceProperties("AWS::Lambda::Permission", {
      Action: "lambda:InvokeFunctionUrl",
      FunctionName: { "Fn::GetAtt": [apiId, "Arn"] },
      Principal: "*",
      FunctionUrlAuthType: "NONE",
    });
    s.template.hasResourceProperties("AWS::Lambda::Permission", {
      Action: "lambda:InvokeFunction",
      FunctionName: { "Fn::GetAtt": [apiId, "Arn"] },
      Principal: "*",
      InvokedViaFunctionUrl: true,
    });
    // No public permission on anything else, and none on the API function that is not via its URL.
    for (const [, permission] of resourcesOfType(s.json, "AWS::Lambda::Permission")) {
      const p = propsOf(permission);
      if (p.Principal !== "*") continue;
      expect(p.FunctionName).toEqual({ "Fn::GetAtt": [apiId, "Arn"] });
      expect(p.FunctionUrlAuthType === "NONE" || p.InvokedViaFunctionUrl === true).toBe(true);
    }
    // The executor has no URL (tenant isolation allows none): the only URL is the API's.
    expect(resourcesOfType(s.json, "AWS::Lambda::Url")).toHaveLength(1);
  });

  it("bounds the door by the API function's reserved concurrency (it has no stage throttling)", () => {
    expect(propsOf(api).ReservedConcurrentExecutions).toBe(DEFAULT_API_RESERVED_CONCURRENCY);
    expect(DEFAULT_API_RESERVED_CONCURRENCY).toBe(100);
    // A throttled API function alarms: the door's limit was reached.
    s.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      MetricName: "Throttles",
      Namespace: "AWS/Lambda",
      Dimensions: [{ Name: "FunctionName", Value: { Ref: apiId } }],
      Threshold: 1,
    });
  });

  it("keeps the API's own deadline inside the function's timeout (the URL waits up to the timeout, not 30 s)", () => {
    const timeout = propsOf(api).Timeout as number;
    const deadline = Number(
      (propsOf(api).Environment as { Variables: Record<string, string> }).Variables
        .CODING_ENV_REQUEST_DEADLINE_S,
    );
    expect(timeout).toBe(28);
    expect(deadline).toBeLessThan(timeout);
  });

  it("counts the door in the 5xx alarm and the step metrics (Lambda's URL metrics, the API's access lines)", () => {
    const rate = resourcesOfType(s.json, "AWS::CloudWatch::Alarm")
      .map(([, a]) => propsOf(a))
      .find((a) => Array.isArray(a.Metrics));
    const metrics = JSON.stringify(rate?.Metrics);
    for (const name of ['"5xx"', '"Count"', '"Url5xxCount"', '"UrlRequestCount"'])
      expect(metrics).toContain(`"MetricName":${name}`);
    s.template.hasResourceProperties("AWS::Logs::MetricFilter", {
      LogGroupName: Match.anyValue(),
      FilterPattern: '{ ($.message = "access") && ($.method = "POST") && ($.path = "/step") }',
      MetricTransformations: [Match.objectLike({ MetricName: "StepLatency", MetricValue: "$.latencyMs" })],
    });
    s.template.hasResourceProperties("AWS::Logs::MetricFilter", {
      FilterPattern: '{ ($.message = "access") && ($.method = "POST") && ($.path = "/step") }',
      MetricTransformations: [Match.objectLike({ MetricName: "Steps", MetricValue: "1" })],
    });
  });

  it("is the stack output ApiFunctionUrl", () => {
    const [urlId] = onlyResource(s.json, "AWS::Lambda::Url");
    expect(s.json.Outputs?.ApiFunctionUrl?.Value).toEqual({ "Fn::GetAtt": [urlId, "FunctionUrl"] });
  });
});

describe("the function URL switch (-c coding-env:apiFunctionUrl, apiReservedConcurrency)", () => {
  it("apiFunctionUrl=false removes the URL, its permissions, output, metrics and the reservation: the HTTP API alone, as before", () => {
    const { template, json } = synth({ context: { apiFunctionUrl: "false" } });
    template.resourceCountIs("AWS::Lambda::Url", 0);
    expect(
      resourcesOfType(json, "AWS::Lambda::Permission").filter(([, p]) => propsOf(p).Principal === "*"),
    ).toEqual([]);
    expect(json.Outputs?.ApiFunctionUrl).toBeUndefined();
    const [, api] = onlyResource(json, "AWS::Lambda::Function", isApi);
    expect(propsOf(api).ReservedConcurrentExecutions).toBeUndefined();
    expect(JSON.stringify(json.Resources)).not.toMatch(/UrlRequestCount|message = \\"access/);
    template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
    });
  });

  it("takes the reservation from context, and keeps the default above the executor's reservation", () => {
    const given = synth({ context: { apiReservedConcurrency: "30" } });
    const [, api] = onlyResource(given.json, "AWS::Lambda::Function", isApi);
    expect(propsOf(api).ReservedConcurrentExecutions).toBe(30);
    const derived = synth({ context: { executorReservedConcurrency: "200" } });
    const [, api2] = onlyResource(derived.json, "AWS::Lambda::Function", isApi);
    expect(propsOf(api2).ReservedConcurrentExecutions).toBe(250);
    // Without the URL a reservation is still applied when asked for.
    const noUrl = synth({ context: { apiFunctionUrl: false, apiReservedConcurrency: 40 } });
    const [, api3] = onlyResource(noUrl.json, "AWS::Lambda::Function", isApi);
    expect(propsOf(api3).ReservedConcurrentExecutions).toBe(40);
  });

  it.each([
    [{ apiFunctionUrl: "yes" }, 'context coding-env:apiFunctionUrl: expected true or false, got "yes"'],
    [
      { apiReservedConcurrency: "lots" },
      'context coding-env:apiReservedConcurrency: expected a number, got "lots"',
    ],
  ])("refuses a bad context value %j in one line", (context, message) => {
    expect(() => synth({ context })).toThrow(ContextValueError);
    expect(() => synth({ context })).toThrow(message);
  });

  it.each([0, -1, 1.5, 100_001])("refuses apiReservedConcurrency %s, naming the construct", (value) => {
    const stack = new Stack(new App(), "S");
    expect(() => new CodingEnvironment(stack, "Env", { apiReservedConcurrency: value })).toThrow(
      CodingEnvironmentPropsError,
    );
    expect(
      () => new CodingEnvironment(new Stack(new App(), "T"), "Env", { apiReservedConcurrency: value }),
    ).toThrow(`T/Env: apiReservedConcurrency must be an integer from 1 to 100000, got ${value}`);
  });
});

describe("the function URL's access line (functions/src/function-url.ts)", () => {
  const event = (domainName: string | undefined) => ({
    rawPath: "/step",
    requestContext: {
      ...(domainName === undefined ? {} : { domainName }),
      requestId: "req-1",
      http: { method: "POST", sourceIp: "2001:db8::7" },
    },
  });

  it("tells the function URL's events from API Gateway's by their domain", () => {
    expect(isFunctionUrlEvent(event("abcdef0123456789.lambda-url.eu-west-1.on.aws"))).toBe(true);
    expect(isFunctionUrlEvent(event("abc123.execute-api.us-east-1.amazonaws.com"))).toBe(false);
    // A custom domain of the HTTP API, a look-alike host, no domain at all.
    expect(isFunctionUrlEvent(event("env.example.com"))).toBe(false);
    expect(isFunctionUrlEvent(event("x.lambda-url.us-east-1.on.aws.example.com"))).toBe(false);
    expect(isFunctionUrlEvent(event(undefined))).toBe(false);
  });

  it("carries the outcome and the caller's address, never a header or the query string, and counts a base64 body's bytes", () => {
    const withSecrets = {
      ...event("abcdef0123456789.lambda-url.eu-west-1.on.aws"),
      rawQueryString: "api_key=ce_secret",
      headers: { authorization: "Bearer ce_secret" },
    };
    const fields = functionUrlAccessFields(
      withSecrets,
      { statusCode: 200, body: "aGk=", isBase64Encoded: true },
      12.4,
    );
    expect(fields).toEqual({
      door: "function_url",
      requestId: "req-1",
      ip: "2001:db8::7",
      method: "POST",
      path: "/step",
      status: 200,
      latencyMs: 12,
      responseLength: 2,
    });
    expect(JSON.stringify(fields)).not.toContain("ce_secret");
    expect(functionUrlAccessFields(withSecrets, { statusCode: 413, body: "é" }, 0).responseLength).toBe(2);
  });
});
