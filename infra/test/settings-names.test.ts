// One list of setting names per side (issue 12): every CODING_ENV_* variable the template sets on a
// function is a name its reader exports (the API's API_ENV from functions/src/config.ts; the
// executor's from python-runtime/coding_env_runtime/options.py), and every exported name is read.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_ENV, type ApiConfig, configFromEnv } from "../../functions/src/config.js";
import { EXECUTOR_ENV } from "../lib/executor.js";
import { repoRoot } from "../lib/function-defaults.js";
import {
  isExecutor,
  removeSynthOutputs,
  resourcesOfType,
  type Synthesized,
  synth,
  variablesOf,
} from "./synth.js";

afterAll(removeSynthOutputs);

/**
 * The names options.py reads, from its `<NAME>_ENV = "CODING_ENV_…"` lines (the Python side's one
 * list; python-runtime/tests/test_settings_names.py checks these lines are exactly what it reads).
 */
function pythonRuntimeNames(): Set<string> {
  const source = readFileSync(`${repoRoot}python-runtime/coding_env_runtime/options.py`, "utf8");
  return new Set(
    [...source.matchAll(/^[A-Z][A-Z0-9_]*_ENV = "(CODING_ENV_[A-Z0-9_]+)"$/gm)].map((m) => m[1] ?? ""),
  );
}

const codingEnvKeys = (variables: Record<string, unknown>) =>
  Object.keys(variables).filter((k) => k.startsWith("CODING_ENV_"));

describe("the CODING_ENV_* variables of the synthesized template", () => {
  let s: Synthesized;
  beforeAll(() => {
    // Every optional setting on, so every variable infra can set is in the template.
    s = synth({
      context: {
        executorReservedConcurrency: "20",
        allowedOrigins: "https://app.example.com",
        quotaStepsPerDay: "500",
        quotaActiveEpisodes: "3",
        quotaMaxStateBytes: "1048576",
      },
    });
  });

  it("on the API, WebSocket and usage functions are names of API_ENV (functions/src/config.ts)", () => {
    const apiNames = new Set<string>(Object.values(API_ENV));
    const nodeFunctions = resourcesOfType(s.json, "AWS::Lambda::Function").filter(
      ([, fn]) => !isExecutor(fn),
    );
    // The HTTP API, the WebSocket API and the usage roll-up at least.
    expect(nodeFunctions.length).toBeGreaterThanOrEqual(3);
    const set = nodeFunctions.flatMap(([, fn]) => codingEnvKeys(variablesOf(fn)));
    expect(set.length).toBeGreaterThan(10);
    expect(set.filter((name) => !apiNames.has(name))).toEqual([]);
  });

  it("on the executor are names of EXECUTOR_ENV that options.py reads", () => {
    const [executor, ...others] = resourcesOfType(s.json, "AWS::Lambda::Function").filter(([, fn]) =>
      isExecutor(fn),
    );
    expect(others).toEqual([]);
    const set = codingEnvKeys(variablesOf(executor?.[1] ?? {}));
    expect(set.sort()).toEqual(Object.values(EXECUTOR_ENV).sort());
    const python = pythonRuntimeNames();
    expect(python.size).toBeGreaterThan(3);
    expect(set.filter((name) => !python.has(name))).toEqual([]);
  });
});

/**
 * A value for each name `configFromEnv` reads and the field it must change (from the defaults),
 * so a name configFromEnv stops reading fails here.
 */
const CONFIG_SAMPLES: Partial<Record<keyof typeof API_ENV, [string, (c: ApiConfig) => unknown]>> = {
  table: ["t-sample", (c) => c.tableName],
  executorFunction: ["fn-sample", (c) => c.executorFunction],
  executorMemoryMb: ["2048", (c) => c.executorMemoryMb],
  auth: ["on", (c) => c.authRequired],
  defaultStepTimeoutS: ["7", (c) => c.defaultStepTimeoutS],
  maxStepTimeoutS: ["99", (c) => c.maxStepTimeoutS],
  maxStateBytes: ["12345", (c) => c.maxStateBytes],
  stateBucket: ["bucket", (c) => c.maxStateBytes],
  executorGraceS: ["9", (c) => c.executorGraceS],
  requestDeadlineS: ["900", (c) => c.requestDeadlineS],
  executorMaxConcurrency: ["3", (c) => c.executorMaxConcurrency],
  tenantMaxRunningSteps: ["3", (c) => c.tenantMaxRunningSteps],
  tenantMaxWaitingSteps: ["3", (c) => c.tenantMaxWaitingSteps],
  maxStepsInFlight: ["3", (c) => c.maxStepsInFlight],
  apiInstances: ["3", (c) => c.apiInstances],
  admissionGovernor: ["off", (c) => c.admissionGovernor],
  executorGovernor: ["on", (c) => c.executorGovernor],
  executorGovernorCheckMs: ["5", (c) => c.executorGovernorCheckMs],
  executorGovernorTtlS: ["5", (c) => c.executorGovernorTtlS],
  executorReservedConcurrency: ["5", (c) => c.executorReservedConcurrency],
  allowedOrigins: ["https://a.example", (c) => c.allowedOrigins],
  allowedHosts: ["a.example", (c) => c.allowedHosts],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "node_modules" ? [] : sourceFiles(path);
    return /\.(ts|mts)$/.test(name) && !name.endsWith(".d.ts") ? [path] : [];
  });
}

describe("API_ENV", () => {
  const nodeSources = [...sourceFiles(`${repoRoot}functions/src`), ...sourceFiles(`${repoRoot}scripts`)];

  it("each name configFromEnv reads changes its setting", () => {
    const defaults = configFromEnv({});
    for (const [key, [value, field]] of Object.entries(CONFIG_SAMPLES)) {
      const name = API_ENV[key as keyof typeof API_ENV];
      expect({ name, value: field(configFromEnv({ [name]: value })) }).not.toEqual({
        name,
        value: field(defaults),
      });
    }
  });

  it("every other name is read by a Node entry point, deps.ts, tenancy/, metering/ or the local stack", () => {
    const text = nodeSources
      .filter((path) => !path.endsWith(`functions${"/"}src${"/"}config.ts`))
      .map((path) => readFileSync(path, "utf8"))
      .join("\n");
    const unread = Object.keys(API_ENV).filter(
      (key) => !(key in CONFIG_SAMPLES) && !text.includes(`API_ENV.${key}`),
    );
    expect(unread).toEqual([]);
  });

  it("names are distinct and no Node source reads a CODING_ENV_* variable by a literal name", () => {
    const names = Object.values(API_ENV);
    expect(new Set(names).size).toBe(names.length);
    const literalReads = nodeSources.flatMap((path) =>
      [
        ...readFileSync(path, "utf8").matchAll(/\benv\??\.CODING_ENV_[A-Z0-9_]+|\benv\[\s*["'`]CODING_ENV_/g),
      ].map((m) => `${path.slice(repoRoot.length)}: ${m[0]}`),
    );
    expect(literalReads).toEqual([]);
  });
});
