// One base URL per deployment: a CloudFront distribution whose `/ws` path is the WebSocket API
// (its stage is named `ws`, so the path reaches the stage unchanged) and whose every other path is
// the HTTP API (OpenEnv's endpoints, /web, /docs, episode resources). API Gateway cannot put a
// WebSocket API and an HTTP API on one domain; CloudFront can. Nothing is cached: every request
// reaches the API with its headers (Authorization too) and query string, over HTTPS only.
import { Duration, Fn, Validations } from "aws-cdk-lib";
import type * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import type * as acm from "aws-cdk-lib/aws-certificatemanager";
import * as cloudfront from "aws-cdk-lib/aws-cloudfront";
import * as origins from "aws-cdk-lib/aws-cloudfront-origins";
import { Construct } from "constructs";
import { WEBSOCKET_STAGE } from "./websocket-api.js";

export interface FrontDoorProps {
  readonly httpApi: apigwv2.HttpApi;
  readonly webSocketApi: apigwv2.WebSocketApi;
  /** Custom domain (e.g. `env.example.com`); needs `certificate`. @default the distribution's own domain */
  readonly domainName?: string;
  /** ACM certificate for `domainName`, in us-east-1 (CloudFront's requirement). */
  readonly certificate?: acm.ICertificate;
  /** Seconds CloudFront waits for the API: above the API's 29 s integration timeout. */
  readonly originReadTimeoutS: number;
}

/** `https://<id>.execute-api.<region>.amazonaws.com` (or `wss://`) -> the host name. */
function hostOf(apiEndpoint: string): string {
  return Fn.select(2, Fn.split("/", apiEndpoint));
}

/** The distribution and the base URL it serves. */
export class FrontDoor extends Construct {
  readonly distribution: cloudfront.Distribution;
  /** `https://<domain>/`: the base URL for the SDKs, OpenEnv's client (`<base>/ws`) and the page. */
  readonly baseUrl: string;

  constructor(scope: Construct, id: string, props: FrontDoorProps) {
    super(scope, id);
    // A domain without its certificate would be a base URL the distribution does not serve.
    if ((props.domainName === undefined) !== (props.certificate === undefined)) {
      throw new Error(
        `${this.node.path}: domainName and certificate go together (a custom domain needs its certificate)`,
      );
    }
    const apiBehavior = (api: apigwv2.IApi): cloudfront.BehaviorOptions => ({
      origin: new origins.HttpOrigin(hostOf(api.apiEndpoint), {
        protocolPolicy: cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
        originSslProtocols: [cloudfront.OriginSslPolicy.TLS_V1_2],
        readTimeout: Duration.seconds(props.originReadTimeoutS),
      }),
      viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
      allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
      cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
      // Every viewer header (Authorization, X-API-Key, Sec-WebSocket-*) and query string (`api_key`,
      // `episode_id`), but not Host: API Gateway answers only to its own host name. CloudFront
      // forwards Authorization through an origin request policy only with caching off, as here.
      originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
      compress: false,
    });
    this.distribution = new cloudfront.Distribution(this, "Distribution", {
      comment: "coding-env: one base URL (HTTP API, /ws WebSocket API)",
      defaultBehavior: apiBehavior(props.httpApi),
      additionalBehaviors: { [`/${WEBSOCKET_STAGE}`]: apiBehavior(props.webSocketApi) },
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      // A minimum TLS version applies to a custom domain's certificate only (see CFR4 below).
      ...(props.domainName !== undefined && props.certificate !== undefined
        ? {
            domainNames: [props.domainName],
            certificate: props.certificate,
            minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
          }
        : {}),
    });
    this.baseUrl = `https://${props.domainName ?? this.distribution.distributionDomainName}/`;

    Validations.of(this.distribution).acknowledge({
      id: "AwsSolutions-CFR1",
      reason:
        "A hosted API for agents anywhere: no country is excluded; access is controlled by API keys, not by geography.",
    });
    Validations.of(this.distribution).acknowledge({
      id: "AwsSolutions-CFR2",
      reason:
        "No WAF web ACL by default (a fixed monthly cost for every deployment); the APIs throttle per stage and per tenant, and an operator can attach a web ACL to the distribution.",
    });
    Validations.of(this.distribution).acknowledge({
      id: "AwsSolutions-CFR3",
      reason:
        "Nothing is cached or served by CloudFront itself: every request is logged where it is answered (HTTP API access log, the WebSocket Lambda's log), so standard logs would only duplicate them in a bucket.",
    });
    if (!props.domainName) {
      Validations.of(this.distribution).acknowledge({
        id: "AwsSolutions-CFR4",
        reason:
          "The distribution's own *.cloudfront.net certificate cannot be given a minimum TLS version; with a custom domain (domainName/certificate props) the policy is TLSv1.2_2021.",
      });
    }
  }
}
