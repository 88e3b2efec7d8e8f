// OpenEnv's WebSocket protocol in AWS and the one base URL, on the synthesized template: the
// WebSocket API and its routes, its Lambda (same settings as the HTTP API's, least privilege), and
// the CloudFront distribution in front of both APIs (caching off, headers and query strings
// forwarded, HTTPS only, /ws to the WebSocket stage), with and without a custom domain.
import { App, Stack } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import * as acm from "aws-cdk-lib/aws-certificatemanager";
import * as cloudfront from "aws-cdk-lib/aws-cloudfront";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CodingEnvironment, CodingEnvironmentPropsError } from "../lib/coding-environment.js";
import { FrontDoor } from "../lib/front-door.js";
import {
  isExecutor,
  onlyResource,
  propsOf,
  referencedId,
  removeSynthOutputs,
  resourcesOfType,
  runsAs,
  type Synthesized,
  statementsOfRole,
  synth,
  variablesOf,
} from "./synth.js";

afterAll(removeSynthOutputs);

const variables = variablesOf;
const isWs = runsAs("coding-env-ws");
const isApi = runsAs("coding-env-api");
// AWS-managed CloudFront policies.
const CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
const ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac";
const CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0b5d4c8e-1111-2222-3333-444455556666";

describe("the WebSocket API", () => {
  let s: Synthesized;
  let wsApiId: string;
  let wsFnId: string;
  beforeAll(() => {
    s = synth();
    [wsApiId] = onlyResource(
      s.json,
      "AWS::ApiGatewayV2::Api",
      (r) => r.Properties?.ProtocolType === "WEBSOCKET",
    );
    [wsFnId] = onlyResource(s.json, "AWS::Lambda::Function", isWs);
  });

  it("has $connect, $disconnect and $default routes, each a Lambda proxy to the WebSocket function with the 29 s timeout", () => {
    for (const routeKey of ["$connect", "$disconnect", "$default"]) {
      s.template.hasResourceProperties("AWS::ApiGatewayV2::Route", {
        ApiId: { Ref: wsApiId },
        RouteKey: routeKey,
      });
    }
    const routes = resourcesOfType(s.json, "AWS::ApiGatewayV2::Route").filter(
      ([, r]) => referencedId(r.Properties?.ApiId) === wsApiId,
    );
    expect(routes).toHaveLength(3);
    const integrations = resourcesOfType(s.json, "AWS::ApiGatewayV2::Integration").filter(
      ([, r]) => referencedId(r.Properties?.ApiId) === wsApiId,
    );
    expect(integrations).toHaveLength(3);
    for (const [, integration] of integrations) {
      expect(integration.Properties).toMatchObject({ IntegrationType: "AWS_PROXY", TimeoutInMillis: 29_000 });
      expect(JSON.stringify(integration.Properties?.IntegrationUri)).toContain(wsFnId);
    }
  });

  it("answers every message through the route response of $default", () => {
    s.template.hasResourceProperties("AWS::ApiGatewayV2::Route", {
      ApiId: { Ref: wsApiId },
      RouteKey: "$default",
      RouteResponseSelectionExpression: "$default",
    });
    s.template.hasResourceProperties("AWS::ApiGatewayV2::RouteResponse", {
      ApiId: { Ref: wsApiId },
      RouteResponseKey: "$default",
    });
  });

  it("serves it on a throttled, auto-deployed stage named ws (the base URL's /ws)", () => {
    s.template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      ApiId: { Ref: wsApiId },
      StageName: "ws",
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
    });
  });

  it("runs the WebSocket function with exactly the HTTP API's settings (one core, one behaviour) and its timeout", () => {
    const [, ws] = onlyResource(s.json, "AWS::Lambda::Function", isWs);
    const [, api] = onlyResource(s.json, "AWS::Lambda::Function", isApi);
    const {
      POWERTOOLS_SERVICE_NAME: _ws,
      CODING_ENV_WS_MANAGEMENT_ENDPOINT: managementEndpoint,
      ...wsSettings
    } = variables(ws);
    // Its management API is this API's ws stage.
    expect(JSON.stringify(managementEndpoint)).toContain(wsApiId);
    expect(JSON.stringify(managementEndpoint)).toContain("/ws");
    const { POWERTOOLS_SERVICE_NAME: _api, ...apiSettings } = variables(api);
    expect(wsSettings).toEqual(apiSettings);
    expect(ws.Properties).toMatchObject({
      Runtime: "nodejs22.x",
      Architectures: ["arm64"],
      Timeout: api.Properties?.Timeout,
      LoggingConfig: { LogFormat: "JSON", SystemLogLevel: "WARN" },
    });
    // Only API Gateway may invoke it, only from this WebSocket API.
    s.template.hasResourceProperties("AWS::Lambda::Permission", {
      Principal: "apigateway.amazonaws.com",
      FunctionName: { "Fn::GetAtt": [wsFnId, "Arn"] },
      SourceArn: Match.objectLike({ "Fn::Join": ["", Match.arrayWith([{ Ref: wsApiId }])] }),
    });
  });

  it("lets the WebSocket role use its table, invoke the executor and send to and close this stage's connections: nothing else", () => {
    const [, ws] = onlyResource(s.json, "AWS::Lambda::Function", isWs);
    const [executorId] = onlyResource(s.json, "AWS::Lambda::Function", isExecutor);
    const [tableId] = onlyResource(s.json, "AWS::DynamoDB::Table");
    const { statements, managedPolicies } = statementsOfRole(
      s.json,
      referencedId(ws.Properties?.Role) as string,
    );
    expect(managedPolicies).toEqual([]);
    expect(statements.every((st) => st.Effect === "Allow")).toBe(true);
    const services = new Set(statements.flatMap((st) => st.Action.map((a) => a.split(":")[0])));
    expect([...services].sort()).toEqual(["dynamodb", "execute-api", "lambda", "logs"]);
    for (const st of statements.filter((x) => x.Action.some((a) => a.startsWith("dynamodb:")))) {
      expect(st.Resource).toEqual([{ "Fn::GetAtt": [tableId, "Arn"] }]);
    }
    expect(statements.filter((st) => st.Action.includes("lambda:InvokeFunction"))).toEqual([
      expect.objectContaining({ Resource: [{ "Fn::GetAtt": [executorId, "Arn"] }] }),
    ]);
    const manage = statements.filter((st) => st.Action.some((a) => a.startsWith("execute-api:")));
    expect(manage).toHaveLength(1);
    expect(manage[0]?.Action).toEqual(["execute-api:ManageConnections"]);
    const arns = (manage[0]?.Resource ?? []).map((r) => JSON.stringify(r));
    expect(arns).toHaveLength(2);
    for (const arn of arns) expect(arn).toContain(wsApiId);
    expect(arns[0]).toContain("/ws/POST/@connections/*");
    expect(arns[1]).toContain("/ws/DELETE/@connections/*");
  });
});

describe("one base URL (CloudFront in front of both APIs)", () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synth();
  });

  const originHost = (apiId: string) => ({
    "Fn::Select": [2, { "Fn::Split": ["/", { "Fn::GetAtt": [apiId, "ApiEndpoint"] }] }],
  });

  it("sends /ws to the WebSocket API and everything else to the HTTP API, HTTPS only, caching off, every header but Host and every query string forwarded", () => {
    const [httpApiId] = onlyResource(
      s.json,
      "AWS::ApiGatewayV2::Api",
      (r) => r.Properties?.ProtocolType === "HTTP",
    );
    const [wsApiId] = onlyResource(
      s.json,
      "AWS::ApiGatewayV2::Api",
      (r) => r.Properties?.ProtocolType === "WEBSOCKET",
    );
    const [, distribution] = onlyResource(s.json, "AWS::CloudFront::Distribution");
    const config = propsOf(distribution).DistributionConfig as {
      Origins: {
        Id: string;
        DomainName: unknown;
        CustomOriginConfig: Record<string, unknown>;
        OriginPath?: string;
      }[];
      DefaultCacheBehavior: Record<string, unknown>;
      CacheBehaviors: Record<string, unknown>[];
    };
    const originOf = (host: unknown) =>
      config.Origins.find((o) => JSON.stringify(o.DomainName) === JSON.stringify(host));
    const httpOrigin = originOf(originHost(httpApiId));
    const wsOrigin = originOf(originHost(wsApiId));
    for (const origin of [httpOrigin, wsOrigin]) {
      expect(origin?.CustomOriginConfig).toMatchObject({
        OriginProtocolPolicy: "https-only",
        OriginSSLProtocols: ["TLSv1.2"],
        OriginReadTimeout: 30,
      });
      // No origin path: the request path `/ws` is the WebSocket stage's path as it is.
      expect(origin?.OriginPath).toBeUndefined();
    }
    const forwardedUncached = {
      ViewerProtocolPolicy: "https-only",
      CachePolicyId: CACHING_DISABLED,
      OriginRequestPolicyId: ALL_VIEWER_EXCEPT_HOST_HEADER,
      AllowedMethods: ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"],
    };
    expect(config.DefaultCacheBehavior).toMatchObject({
      ...forwardedUncached,
      TargetOriginId: httpOrigin?.Id,
    });
    expect(config.CacheBehaviors).toEqual([
      expect.objectContaining({ ...forwardedUncached, PathPattern: "/ws", TargetOriginId: wsOrigin?.Id }),
    ]);
    // The path needs no rewrite: `/ws` is the WebSocket API's stage, and no origin path is added.
    const [, wsStage] = onlyResource(
      s.json,
      "AWS::ApiGatewayV2::Stage",
      (r) => referencedId(r.Properties?.ApiId) === wsApiId,
    );
    expect(`/${propsOf(wsStage).StageName}`).toBe(config.CacheBehaviors[0]?.PathPattern);
    s.template.hasResourceProperties("AWS::CloudFront::Distribution", {
      DistributionConfig: Match.objectLike({ Enabled: true, HttpVersion: "http2and3" }),
    });
  });

  it("never forwards the viewer's Host header (API Gateway answers only to its own host name)", () => {
    const [, distribution] = onlyResource(s.json, "AWS::CloudFront::Distribution");
    const config = propsOf(distribution).DistributionConfig as {
      DefaultCacheBehavior: Record<string, unknown>;
      CacheBehaviors: Record<string, unknown>[];
    };
    // The managed policy CDK names AllViewerExceptHostHeader, not AllViewer (which forwards Host).
    expect(ALL_VIEWER_EXCEPT_HOST_HEADER).toBe(
      cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER.originRequestPolicyId,
    );
    for (const behavior of [config.DefaultCacheBehavior, ...config.CacheBehaviors]) {
      expect(behavior.OriginRequestPolicyId).toBe(ALL_VIEWER_EXCEPT_HOST_HEADER);
      expect(behavior.OriginRequestPolicyId).not.toBe(
        cloudfront.OriginRequestPolicy.ALL_VIEWER.originRequestPolicyId,
      );
      // No legacy forwarding settings (which could whitelist Host) beside the policies.
      expect(behavior).not.toHaveProperty("ForwardedValues");
    }
    // Nor a policy of our own.
    expect(resourcesOfType(s.json, "AWS::CloudFront::OriginRequestPolicy")).toEqual([]);
    expect(resourcesOfType(s.json, "AWS::CloudFront::CachePolicy")).toEqual([]);
  });

  it("refuses a custom domain without its certificate (or the reverse) when the constructs are built, not at deploy time", () => {
    const stack = () => new Stack(new App(), "Check");
    const certificate = (scope: Stack) => acm.Certificate.fromCertificateArn(scope, "Cert", CERTIFICATE_ARN);
    const s1 = stack();
    expect(() => new CodingEnvironment(s1, "Env", { domainName: "env.example.com" })).toThrow(
      CodingEnvironmentPropsError,
    );
    const s2 = stack();
    expect(() => new CodingEnvironment(s2, "Env", { certificate: certificate(s2) })).toThrow(
      /domainName and certificate go together/,
    );
    const s3 = stack();
    expect(
      () => new CodingEnvironment(s3, "Env", { domainName: "Env.Example.com", certificate: certificate(s3) }),
    ).toThrow(/is not a lowercase host name/);
    // The front door on its own, too: its base URL would name a domain it does not serve.
    const s4 = stack();
    const apis = {
      httpApi: new apigwv2.HttpApi(s4, "Http"),
      webSocketApi: new apigwv2.WebSocketApi(s4, "Ws"),
      originReadTimeoutS: 30,
    };
    expect(() => new FrontDoor(s4, "Door", { ...apis, domainName: "env.example.com" })).toThrow(
      /domainName and certificate go together/,
    );
  });

  it("serves a custom domain with its certificate (TLS 1.2 and up, SNI) when asked, and outputs that URL", () => {
    const { template, json } = synth({
      context: { domainName: "env.example.com", certificateArn: CERTIFICATE_ARN },
    });
    template.hasResourceProperties("AWS::CloudFront::Distribution", {
      DistributionConfig: Match.objectLike({
        Aliases: ["env.example.com"],
        ViewerCertificate: {
          AcmCertificateArn: CERTIFICATE_ARN,
          MinimumProtocolVersion: "TLSv1.2_2021",
          SslSupportMethod: "sni-only",
        },
      }),
    });
    expect(json.Outputs?.BaseUrl?.Value).toBe("https://env.example.com/");
    expect(json.Outputs?.WebSocketUrl?.Value).toBe("wss://env.example.com/ws");
  });

  it.each([
    [{ domainName: "env.example.com" }, /coding-env:domainName: domainName and certificateArn go together/],
    [
      { domainName: "env.example.com", certificateArn: CERTIFICATE_ARN.replace("us-east-1", "eu-west-1") },
      /not an ACM certificate ARN in us-east-1/,
    ],
    [{ domainName: "Env.Example.com", certificateArn: CERTIFICATE_ARN }, /is not a lowercase host name/],
  ])("refuses %j at synth time", (context, message) => {
    expect(() => synth({ context })).toThrow(message);
  });
});
