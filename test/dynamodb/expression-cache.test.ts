// The local DynamoDB front memoises dynalite's expression parses (dynalite-expression-cache.ts):
// a repeated expression is parsed once, each request still gets its own tree, and dynalite's checks
// that depend on the parse (unused attribute values, undefined ones) answer as without the memo.
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { memoisedParse } from "../../functions/src/local/dynalite-expression-cache.js";
import { createStore, validate } from "../../functions/src/local/dynalite-store.js";
import { OperationError } from "../../functions/src/local/dynamodb-rules.js";

const require = createRequire(import.meta.url);
type Parse = Parameters<typeof memoisedParse>[0];
const store = createStore(null);

function query(values: Record<string, unknown>, expression = "pk = :pk AND sk BETWEEN :lo AND :hi") {
  return {
    TableName: "episodes",
    KeyConditionExpression: expression,
    ExpressionAttributeValues: values,
    ConsistentRead: true,
  };
}
const values = { ":pk": { S: "E#1" }, ":lo": { S: "M#" }, ":hi": { S: "META" } };

function refusal(input: Record<string, unknown>): string {
  try {
    validate(store, "Query", input);
  } catch (err) {
    if (err instanceof OperationError) return JSON.stringify(err.body);
    throw err;
  }
  return "accepted";
}

describe("dynalite expression memo", () => {
  it("parses an expression once per value types, and again for other BETWEEN bounds", () => {
    let calls = 0;
    const parser = require("dynalite/db/conditionParser") as { parse: Parse };
    // The memo over a counting wrapper of the parser the front has memoised (a hit there is a call here).
    const parse = memoisedParse((input, options) => {
      calls++;
      return parser.parse(input, options);
    });
    const context = (vals: Record<string, unknown> = values) => ({
      isReserved: () => false,
      compare: (require("dynalite/db") as { compare: unknown }).compare,
      attrVals: { ...vals },
      unusedAttrVals: Object.fromEntries(Object.keys(vals).map((k) => [k, true])),
    });
    const a = parse("pk = :pk", { context: context() });
    const b = parse("pk = :pk", { context: context() });
    expect(calls).toBe(1);
    expect(b).toEqual(a);
    expect(b).not.toBe(a);
    // Another value of the same type: the same tree, holding the request's own value object.
    const other = context({ ...values, ":pk": { S: "E#2" } });
    const c = parse("pk = :pk", { context: other }) as { expression: { args: unknown[] } };
    expect(calls).toBe(1);
    expect(c.expression.args[1]).toBe(other.attrVals[":pk"]);
    expect(c).toEqual(parser.parse("pk = :pk", { context: context({ ...values, ":pk": { S: "E#2" } }) }));
    // Another type: parsed again (begins_with refuses a number, which a cached tree would hide).
    parse("begins_with(sk, :pk)", { context: context() });
    expect(calls).toBe(2);
    const refused = parse("begins_with(sk, :pk)", { context: context({ ...values, ":pk": { N: "1" } }) });
    expect(calls).toBe(3);
    expect(refused).toContain("Incorrect operand type");
    // BETWEEN reads its bounds: other bounds are parsed again (out of order is refused).
    const between = "sk BETWEEN :lo AND :hi";
    parse(between, { context: context() });
    parse(between, { context: context({ ...values, ":pk": { S: "E#3" } }) });
    expect(calls).toBe(4);
    const reversed = parse(between, { context: context({ ...values, ":lo": { S: "Z" } }) });
    expect(calls).toBe(5);
    expect(reversed).toContain("upper bound to be greater than or equal to lower bound");
  });

  it("hands each request its own tree: dynalite rewriting one leaves the next intact", () => {
    // dynalite turns `:pk = pk` around in place while it builds KeyConditions: with a shared tree the
    // second request would find no key attribute in it.
    const conditions = [1, 2, 3].map(
      () =>
        (validate(store, "Query", query({ ":pk": values[":pk"] }, ":pk = pk")) as { KeyConditions: unknown })
          .KeyConditions,
    );
    expect(conditions[0]).toEqual({ pk: { ComparisonOperator: "EQ", AttributeValueList: [{ S: "E#1" }] } });
    expect(conditions[2]).toEqual(conditions[0]);
  });

  it("still refuses unused and undefined attribute values on a repeated expression", () => {
    expect(refusal(query(values))).toBe("accepted");
    expect(refusal(query(values))).toBe("accepted");
    const unused = refusal(query({ ...values, ":extra": { S: "x" } }));
    expect(unused).toContain("unused in expressions");
    expect(refusal(query({ ...values, ":extra": { S: "x" } }))).toBe(unused);
    const { ":hi": _hi, ...missing } = values;
    const undefinedValue = refusal(query(missing));
    expect(undefinedValue).toContain("not defined");
    expect(refusal(query(missing))).toBe(undefinedValue);
  });
});
