// Metrics, alarms and the dashboard of the stack. Step latency and count come from the HTTP API's
// access log (end-to-end as the client sees it) and, for the function URL, from the access line the
// API writes in its own log with the same fields (functions/src/function-url.ts).
import { Duration, Stack } from "aws-cdk-lib";
import type * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cloudwatchActions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sns from "aws-cdk-lib/aws-sns";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";

export interface MonitoringOpts {
  readonly httpApi: apigwv2.HttpApi;
  /** The API function and its log group: its function URL's metrics and access lines. */
  readonly apiFunction: lambda.IFunction;
  readonly apiLogGroup: logs.ILogGroup;
  /** Whether the API function has a function URL (a second door to count). */
  readonly apiFunctionUrl: boolean;
  /** Whether the API function has a reserved concurrency (its throttles then get an alarm). */
  readonly apiReservedConcurrency: boolean;
  readonly webSocketApi: apigwv2.WebSocketApi;
  readonly webSocketFunction: lambda.IFunction;
  readonly accessLogGroup: logs.ILogGroup;
  readonly executor: lambda.IFunction;
  readonly aggregator: lambda.IFunction;
  readonly aggregatorDeadLetters: sqs.IQueue;
  readonly api5xxAlarmPercent: number;
  readonly alarmTopic?: sns.ITopic;
}

export interface Monitoring {
  readonly alarms: cloudwatch.Alarm[];
  readonly dashboard: cloudwatch.Dashboard;
}

/** Creates the metric filters, alarms and dashboard in `scope` (ids kept from the first version). */
export function createMonitoring(scope: Construct, opts: MonitoringOpts): Monitoring {
  const metricNamespace = `CodingEnv/${Stack.of(scope).stackName}`;
  const isStep = [
    logs.FilterPattern.stringValue("$.method", "=", "POST"),
    logs.FilterPattern.stringValue("$.path", "=", "/step"),
  ];
  const stepFilter = logs.FilterPattern.all(...isStep);
  new logs.MetricFilter(scope, "StepLatencyFilter", {
    logGroup: opts.accessLogGroup,
    filterPattern: stepFilter,
    metricNamespace,
    metricName: "StepLatency",
    metricValue: "$.latencyMs",
    unit: cloudwatch.Unit.MILLISECONDS,
  });
  new logs.MetricFilter(scope, "StepCountFilter", {
    logGroup: opts.accessLogGroup,
    filterPattern: stepFilter,
    metricNamespace,
    metricName: "Steps",
    metricValue: "1",
    unit: cloudwatch.Unit.COUNT,
  });
  if (opts.apiFunctionUrl) {
    // The same metrics from the function URL's access lines (only those carry `message: access`).
    const urlStepFilter = logs.FilterPattern.all(
      logs.FilterPattern.stringValue("$.message", "=", "access"),
      ...isStep,
    );
    new logs.MetricFilter(scope, "FunctionUrlStepLatencyFilter", {
      logGroup: opts.apiLogGroup,
      filterPattern: urlStepFilter,
      metricNamespace,
      metricName: "StepLatency",
      metricValue: "$.latencyMs",
      unit: cloudwatch.Unit.MILLISECONDS,
    });
    new logs.MetricFilter(scope, "FunctionUrlStepCountFilter", {
      logGroup: opts.apiLogGroup,
      filterPattern: urlStepFilter,
      metricNamespace,
      metricName: "Steps",
      metricValue: "1",
      unit: cloudwatch.Unit.COUNT,
    });
  }
  const stepLatency = (stat: string) =>
    new cloudwatch.Metric({
      namespace: metricNamespace,
      metricName: "StepLatency",
      statistic: stat,
      period: Duration.minutes(5),
      unit: cloudwatch.Unit.MILLISECONDS,
    });
  const stepCount = new cloudwatch.Metric({
    namespace: metricNamespace,
    metricName: "Steps",
    statistic: "Sum",
    period: Duration.minutes(5),
  });

  const apiId = { ApiId: opts.httpApi.apiId };
  const requests = new cloudwatch.Metric({
    namespace: "AWS/ApiGateway",
    metricName: "Count",
    dimensionsMap: apiId,
    statistic: "Sum",
    period: Duration.minutes(5),
  });
  const serverErrors = new cloudwatch.Metric({
    namespace: "AWS/ApiGateway",
    metricName: "5xx",
    dimensionsMap: apiId,
    statistic: "Sum",
    period: Duration.minutes(5),
  });
  // Lambda's own metrics of the function URL (dimension FunctionName: every URL of the function).
  const functionUrlMetric = (metricName: string) =>
    new cloudwatch.Metric({
      namespace: "AWS/Lambda",
      metricName,
      dimensionsMap: { FunctionName: opts.apiFunction.functionName },
      statistic: "Sum",
      period: Duration.minutes(5),
    });
  // Both doors together; FILL because a door without traffic in a period has no data point.
  const api5xxRate = opts.apiFunctionUrl
    ? new cloudwatch.MathExpression({
        expression:
          "IF(FILL(requests, 0) + FILL(urlRequests, 0) > 0, 100 * (FILL(errors, 0) + FILL(urlErrors, 0)) / (FILL(requests, 0) + FILL(urlRequests, 0)), 0)",
        usingMetrics: {
          errors: serverErrors,
          requests,
          urlErrors: functionUrlMetric("Url5xxCount"),
          urlRequests: functionUrlMetric("UrlRequestCount"),
        },
        label: "API 5xx rate (%), HTTP API and function URL",
        period: Duration.minutes(5),
      })
    : new cloudwatch.MathExpression({
        expression: "IF(requests > 0, 100 * errors / requests, 0)",
        usingMetrics: { errors: serverErrors, requests },
        label: "API 5xx rate (%)",
        period: Duration.minutes(5),
      });
  const webSocketMetric = (metricName: string) =>
    new cloudwatch.Metric({
      namespace: "AWS/ApiGateway",
      metricName,
      dimensionsMap: { ApiId: opts.webSocketApi.apiId },
      statistic: "Sum",
      period: Duration.minutes(5),
    });
  const deadLetters = opts.aggregatorDeadLetters.metricApproximateNumberOfMessagesVisible({
    period: Duration.minutes(5),
    statistic: "Maximum",
  });

  const atLeastOne = {
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  };
  const alarms = [
    new cloudwatch.Alarm(scope, "Api5xxRateAlarm", {
      alarmDescription: `More than ${opts.api5xxAlarmPercent}% of API requests answered 5xx in 5 minutes`,
      metric: api5xxRate,
      threshold: opts.api5xxAlarmPercent,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }),
    // User-code failures are data, not Lambda errors: any executor error is a runtime fault.
    new cloudwatch.Alarm(scope, "ExecutorErrorsAlarm", {
      alarmDescription: "The Python executor reported function errors (runtime faults, timeouts)",
      metric: opts.executor.metricErrors({ period: Duration.minutes(5), statistic: "Sum" }),
      ...atLeastOne,
    }),
    new cloudwatch.Alarm(scope, "ExecutorThrottlesAlarm", {
      alarmDescription: "The Python executor was throttled (concurrency or tenant-environment limit reached)",
      metric: opts.executor.metricThrottles({ period: Duration.minutes(5), statistic: "Sum" }),
      ...atLeastOne,
    }),
    // The API's reserved concurrency is the function URL's throttle: reached means a flood, or a
    // reservation too small for the load (raise apiReservedConcurrency).
    ...(opts.apiReservedConcurrency
      ? [
          new cloudwatch.Alarm(scope, "ApiThrottlesAlarm", {
            alarmDescription:
              "The API function was throttled: its reserved concurrency (the function URL's only throttle) was reached",
            metric: opts.apiFunction.metricThrottles({ period: Duration.minutes(5), statistic: "Sum" }),
            ...atLeastOne,
          }),
        ]
      : []),
    // A batch of the table's stream that failed every retry: its steps are not in the usage totals
    // until it is replayed (the stream keeps records 24 hours).
    new cloudwatch.Alarm(scope, "UsageDeadLettersAlarm", {
      alarmDescription:
        "A batch of step records could not be rolled up into usage (see the dead-letter queue; replay within 24 h)",
      metric: deadLetters,
      ...atLeastOne,
    }),
  ];
  if (opts.alarmTopic) {
    const action = new cloudwatchActions.SnsAction(opts.alarmTopic);
    for (const alarm of alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
  }

  const dashboard = new cloudwatch.Dashboard(scope, "Dashboard", {
    defaultInterval: Duration.hours(3),
    widgets: [
      [
        new cloudwatch.GraphWidget({
          title: "Step latency (POST /step, ms)",
          left: [stepLatency("p50"), stepLatency("p90"), stepLatency("p99")],
          width: 12,
        }),
        new cloudwatch.GraphWidget({ title: "Steps (per 5 minutes)", left: [stepCount], width: 12 }),
      ],
      [
        new cloudwatch.GraphWidget({
          title: "Executor duration (ms)",
          left: [
            opts.executor.metricDuration({ statistic: "p50" }),
            opts.executor.metricDuration({ statistic: "p99" }),
            opts.executor.metricDuration({ statistic: "Maximum" }),
          ],
          width: 12,
        }),
        new cloudwatch.GraphWidget({
          title: "Executor errors, throttles, concurrency",
          left: [opts.executor.metricErrors(), opts.executor.metricThrottles()],
          right: [opts.executor.metric("ConcurrentExecutions", { statistic: "Maximum" })],
          width: 12,
        }),
      ],
      [
        new cloudwatch.GraphWidget({ title: "API 5xx rate (%)", left: [api5xxRate], width: 12 }),
        new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms, width: 12 }),
      ],
      ...(opts.apiFunctionUrl
        ? [
            [
              new cloudwatch.GraphWidget({
                title: "Function URL: requests, 4xx, 5xx; API throttles and concurrency",
                left: [
                  functionUrlMetric("UrlRequestCount"),
                  functionUrlMetric("Url4xxCount"),
                  functionUrlMetric("Url5xxCount"),
                ],
                right: [
                  opts.apiFunction.metricThrottles(),
                  opts.apiFunction.metric("ConcurrentExecutions", { statistic: "Maximum" }),
                ],
                width: 24,
              }),
            ],
          ]
        : []),
      [
        new cloudwatch.GraphWidget({
          title: "WebSocket API: messages, connections, integration errors",
          left: [webSocketMetric("MessageCount"), webSocketMetric("ConnectCount")],
          right: [webSocketMetric("IntegrationError"), opts.webSocketFunction.metricErrors()],
          width: 24,
        }),
      ],
      [
        new cloudwatch.GraphWidget({
          title: "Usage roll-up: stream lag (ms) and errors",
          left: [opts.aggregator.metric("IteratorAge", { statistic: "Maximum" })],
          right: [opts.aggregator.metricErrors(), deadLetters],
          width: 24,
        }),
      ],
    ],
  });
  return { alarms, dashboard };
}
