// OpenEnv's server (Python) writes rewards as floats; toWireJson does the same for ours.
import { describe, expect, it } from "vitest";
import { toWireJson } from "../../functions/src/http/wire-json.js";

describe("toWireJson", () => {
  it("writes integral rewards as floats, at any depth, and leaves everything else as JSON.stringify", () => {
    const value = {
      reward: 0,
      step_count: 1,
      steps: [{ reward: -1, observation: { exit_code: 1 } }, { reward: 0.1 }, { reward: null }],
    };
    expect(toWireJson(value)).toBe(
      '{"reward":0.0,"step_count":1,"steps":[{"reward":-1.0,"observation":{"exit_code":1}},{"reward":0.1},{"reward":null}]}',
    );
    expect(JSON.parse(toWireJson(value))).toEqual(value);
  });

  it("never changes user text, even text that looks like its marker", () => {
    const value = { reward: -2, observation: { stdout: '\u0000float-:1" "reward":-1', stderr: "\u0000" } };
    expect(JSON.parse(toWireJson(value))).toEqual(value);
    expect(toWireJson(value)).toContain('"reward":-2.0');
  });
});
