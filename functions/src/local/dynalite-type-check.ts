// dynalite's type check of a request (validations/index.js `checkTypes`), compiled once per
// operation instead of interpreted on every request. dynalite's checkType walks a type descriptor
// for every value it checks: it matches the type's name against a regular expression and, for each
// attribute value, builds the AttributeValue descriptor anew; for a step's three requests that was
// a tenth of the local DynamoDB's time. Here each descriptor becomes a function once (children
// compiled on first use, so the recursive AttributeValue type is finite); the functions do what
// dynalite's switch does, case by case: the same conversions (Boolean strings, integer floors), the
// same removal of unknown fields (from the request's own nested objects, as dynalite does), the same
// errors, in the same order. test/dynamodb/type-check.test.ts compares both on valid and invalid input.

type TypeDescriptor = string | { type?: string; children?: TypeDescriptor | Record<string, TypeDescriptor> };
type Types = Record<string, TypeDescriptor>;
type Check = (val: unknown) => unknown;

interface TypeError400 extends Error {
  statusCode: number;
  body: { __type: string; Message: string };
}

function typeError(msg: string): TypeError400 {
  const err = new Error(msg) as TypeError400;
  err.statusCode = 400;
  err.body = { __type: "com.amazon.coral.service#SerializationException", Message: msg };
  return err;
}

/** The descriptor dynalite builds for `AttrStruct<subtype>` (an AttributeValue). */
function attrStruct(subtype: string): TypeDescriptor {
  return {
    type: `${subtype}<AttributeValue>`,
    children: {
      S: "String",
      B: "Blob",
      N: "String",
      BOOL: "Boolean",
      NULL: "Boolean",
      BS: { type: "List", children: "Blob" },
      NS: { type: "List", children: "String" },
      SS: { type: "List", children: "String" },
      L: { type: "List", children: "AttrStruct<ValueStruct>" },
      M: { type: "Map<AttributeValue>", children: "AttrStruct<ValueStruct>" },
    },
  };
}

const byString = new Map<string, Check>();
const byObject = new WeakMap<object, Check>();
const structs = new WeakMap<object, (data: Record<string, unknown>) => Record<string, unknown>>();

/** A check for one descriptor (memoised: AttributeValue descriptors refer to themselves by name). */
function compile(descriptor: TypeDescriptor): Check {
  if (typeof descriptor === "string") {
    let check = byString.get(descriptor);
    if (!check) {
      check = build(descriptor);
      byString.set(descriptor, check);
    }
    return check;
  }
  let check = byObject.get(descriptor);
  if (!check) {
    check = build(descriptor);
    byObject.set(descriptor, check);
  }
  return check;
}

/** A check deferred to its first call, so recursive descriptors compile lazily. */
function lazy(descriptor: TypeDescriptor): Check {
  let check: Check | undefined;
  return (val) => {
    check ??= compile(descriptor);
    return check(val);
  };
}

/** checkTypes(data, types) of one struct descriptor, compiled. */
export function compileTypes(types: Types): (data: Record<string, unknown>) => Record<string, unknown> {
  let compiled = structs.get(types);
  if (compiled) return compiled;
  const keys = Object.keys(types);
  const checks = keys.map((key) => lazy(types[key] as TypeDescriptor));
  compiled = (data) => {
    // As dynalite: a field it does not know (or null) is deleted from the object it was given.
    for (const key in data) {
      if (!types[key] || data[key] == null) delete data[key];
    }
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i] as string;
      const val = (checks[i] as Check)(data[key]);
      if (val != null) out[key] = val;
    }
    return out;
  };
  structs.set(types, compiled);
  return compiled;
}

/** dynalite's checkType(val, descriptor), as a function of val. */
function build(descriptor: TypeDescriptor): Check {
  let type: string;
  let childrenDescriptor: unknown;
  if (typeof descriptor === "string") type = descriptor;
  else {
    childrenDescriptor = descriptor.children;
    type = descriptor.type ?? (descriptor as unknown as string);
  }
  if (typeof childrenDescriptor === "string") childrenDescriptor = { type: childrenDescriptor };
  const children = childrenDescriptor as TypeDescriptor;
  const subtypeMatch = type.match(/(.+?)<(.+)>$/);
  let subtype: string | undefined;
  if (subtypeMatch != null) {
    type = subtypeMatch[1] as string;
    subtype = subtypeMatch[2] as string;
  }
  if (type === "AttrStruct") return lazy(attrStruct(subtype as string));

  switch (type) {
    case "Boolean":
      return (val) => {
        if (val == null) return null;
        switch (typeof val) {
          case "number":
            throw typeError(
              `${val % 1 === 0 ? "NUMBER_VALUE" : "DECIMAL_VALUE"} cannot be converted to ${type}`,
            );
          case "string": {
            const upper = val.toUpperCase();
            if (upper === "TRUE" || upper === "1" || upper === "YES") return true;
            if (upper === "FALSE" || upper === "0" || upper === "NO") return false;
            throw typeError("Unexpected token received from parser");
          }
          case "object":
            if (Array.isArray(val)) throw typeError(`Unrecognized collection type class java.lang.${type}`);
            throw typeError("Start of structure or map found where not expected");
        }
        return val;
      };
    case "Short":
    case "Integer":
    case "Long":
    case "Double":
      return (val) => {
        if (val == null) return null;
        switch (typeof val) {
          case "boolean":
            throw typeError(`${val ? "TRUE_VALUE" : "FALSE_VALUE"} cannot be converted to ${type}`);
          case "number":
            return type !== "Double" ? Math.floor(val) : val;
          case "string":
            throw typeError(`STRING_VALUE cannot be converted to ${type}`);
          case "object":
            if (Array.isArray(val)) throw typeError(`Unrecognized collection type class java.lang.${type}`);
            throw typeError("Start of structure or map found where not expected");
        }
        return val;
      };
    case "String":
      return (val) => {
        if (val == null) return null;
        switch (typeof val) {
          case "boolean":
            throw typeError(`${val ? "TRUE_VALUE" : "FALSE_VALUE"} cannot be converted to ${type}`);
          case "number":
            throw typeError(
              `${val % 1 === 0 ? "NUMBER_VALUE" : "DECIMAL_VALUE"} cannot be converted to ${type}`,
            );
          case "object":
            if (Array.isArray(val)) throw typeError(`Unrecognized collection type class java.lang.${type}`);
            throw typeError("Start of structure or map found where not expected");
        }
        return val;
      };
    case "Blob":
      return (val) => {
        if (val == null) return null;
        switch (typeof val) {
          case "boolean":
          case "number":
            throw typeError("only base-64-encoded strings are convertible to bytes");
          case "object":
            if (Array.isArray(val)) throw typeError("Unrecognized collection type class java.nio.ByteBuffer");
            throw typeError("Start of structure or map found where not expected");
        }
        const text = val as string;
        if (text.length % 4)
          throw typeError(
            `Base64 encoded length is expected a multiple of 4 bytes but found: ${text.length}`,
          );
        if (Buffer.from(text, "base64").toString("base64") !== text)
          throw typeError("Invalid last non-pad Base64 character dectected");
        return val;
      };
    case "List": {
      const child = lazy(children);
      return (val) => {
        if (val == null) return null;
        switch (typeof val) {
          case "boolean":
          case "number":
          case "string":
            throw typeError("Unexpected field type");
          case "object":
            if (!Array.isArray(val)) throw typeError("Start of structure or map found where not expected");
        }
        return (val as unknown[]).map(child);
      };
    }
    case "ParameterizedList": {
      const child = lazy(children);
      return (val) => {
        if (val == null) return null;
        switch (typeof val) {
          case "boolean":
          case "number":
          case "string":
            throw typeError(
              "class sun.reflect.generics.reflectiveObjects.ParameterizedTypeImpl cannot be cast to class java.lang.Class (sun.reflect.generics.reflectiveObjects.ParameterizedTypeImpl and java.lang.Class are in module java.base of loader 'bootstrap')",
            );
          case "object":
            if (!Array.isArray(val)) throw typeError("Start of structure or map found where not expected");
        }
        return (val as unknown[]).map(child);
      };
    }
    case "ParameterizedMap": {
      const child = lazy(children);
      return (val) => {
        if (val == null) return null;
        switch (typeof val) {
          case "boolean":
          case "number":
          case "string":
            throw typeError(
              "class sun.reflect.generics.reflectiveObjects.ParameterizedTypeImpl cannot be cast to class java.lang.Class (sun.reflect.generics.reflectiveObjects.ParameterizedTypeImpl and java.lang.Class are in module java.base of loader 'bootstrap')",
            );
          case "object":
            if (Array.isArray(val))
              throw typeError(
                "Unrecognized collection type java.util.Map<java.lang.String, com.amazonaws.dynamodb.v20120810.AttributeValue>",
              );
        }
        return mapValues(val as Record<string, unknown>, child);
      };
    }
    case "Map": {
      const child = lazy(children);
      return (val) => {
        if (val == null) return null;
        switch (typeof val) {
          case "boolean":
          case "number":
          case "string":
            throw typeError("Unexpected field type");
          case "object":
            if (Array.isArray(val)) {
              const sub = subtype as string;
              throw typeError(
                `Unrecognized collection type java.util.Map<java.lang.String, ${~sub.indexOf(".") ? sub : `com.amazonaws.dynamodb.v20120810.${sub}`}>`,
              );
            }
        }
        return mapValues(val as Record<string, unknown>, child);
      };
    }
    case "ValueStruct":
    case "FieldStruct": {
      let struct: ((data: Record<string, unknown>) => Record<string, unknown>) | undefined;
      const scalarError =
        type === "ValueStruct" ? "Unexpected value type in payload" : "Unexpected field type";
      return (val) => {
        if (val == null) return null;
        switch (typeof val) {
          case "boolean":
          case "number":
          case "string":
            throw typeError(scalarError);
          case "object":
            if (Array.isArray(val))
              throw typeError(
                `Unrecognized collection type class com.amazonaws.dynamodb.v20120810.${subtype}`,
              );
        }
        struct ??= compileTypes(children as unknown as Types);
        return struct(val as Record<string, unknown>);
      };
    }
    default:
      return (val) => {
        if (val == null) return null;
        throw new Error(`Unknown type: ${type}`);
      };
  }
}

function mapValues(val: Record<string, unknown>, child: Check): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(val)) out[key] = child(val[key]);
  return out;
}
