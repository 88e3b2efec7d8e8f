// Generates the SDK's wire types (sdk/src/types.generated.ts) from the API's /openapi.json, so the
// SDK cannot drift from the routes' own schemas. No network: the document comes from the app
// itself (createApp answering GET /openapi.json in process).
//   npx tsx scripts/generate-sdk-types.ts          writes the file
//   npx tsx scripts/generate-sdk-types.ts --check  exits 1 when the committed file is stale
// test/contract/sdk-types.test.ts runs the check.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createApp } from "../functions/src/app.js";
import { configFromEnv } from "../functions/src/config.js";
import type { EpisodeService } from "../functions/src/core/episodes.js";

export const SDK_TYPES_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "sdk",
  "src",
  "types.generated.ts",
);

type JsonSchema = {
  $ref?: string;
  type?: string | string[];
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  default?: unknown;
  [k: string]: unknown;
};

/** The API's OpenAPI document, from the app itself (no episode service is called). */
export async function openApiDocument(): Promise<{ components: { schemas: Record<string, JsonSchema> } }> {
  const app = createApp({ episodes: {} as EpisodeService, config: configFromEnv({}) });
  const res = await app.request("/openapi.json");
  if (res.status !== 200) throw new Error(`/openapi.json answered ${res.status}`);
  return (await res.json()) as { components: { schemas: Record<string, JsonSchema> } };
}

function comment(text: string | undefined, indent: string, limits: string[] = []): string {
  const lines = [...(text ? [text] : []), ...limits];
  if (lines.length === 0) return "";
  return `${indent}/** ${lines.join(" ").replaceAll("*/", "*\\/")} */\n`;
}

/** Limits the schema states, for the doc comment. */
function limitsOf(s: JsonSchema): string[] {
  const keys = [
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
  ];
  const found = keys.filter((k) => s[k] !== undefined).map((k) => `${k}: ${JSON.stringify(s[k])}`);
  return found.length > 0 ? [`(${found.join(", ")})`] : [];
}

function typeOf(s: JsonSchema, indent: string): string {
  if (s.$ref) return s.$ref.replace("#/components/schemas/", "");
  if (s.allOf?.length === 1 && s.allOf[0]) return typeOf(s.allOf[0], indent);
  // A schema extending another (zod's .extend of a named schema): the base and the added members.
  if (s.allOf) return s.allOf.map((part) => typeOf(part, indent)).join(" & ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  const union = s.anyOf ?? s.oneOf;
  if (union) return union.map((u) => typeOf(u, indent)).join(" | ");
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (types.length === 0) return "unknown";
  return types
    .map((t) => {
      switch (t) {
        case "string":
          return "string";
        case "integer":
        case "number":
          return "number";
        case "boolean":
          return "boolean";
        case "null":
          return "null";
        case "array": {
          const item = s.items ? typeOf(s.items, indent) : "unknown";
          return /[ |]/.test(item) ? `Array<${item}>` : `${item}[]`;
        }
        case "object":
          return objectType(s, indent);
        default:
          return "unknown";
      }
    })
    .join(" | ");
}

function objectType(s: JsonSchema, indent: string): string {
  const props = s.properties ?? {};
  const extra = s.additionalProperties;
  if (Object.keys(props).length === 0) {
    const value = typeof extra === "object" ? typeOf(extra, indent) : "unknown";
    return `Record<string, ${value}>`;
  }
  const inner = `${indent}  `;
  // A member with a default is always on the wire in a response (the server fills it in).
  const required = new Set([
    ...(s.required ?? []),
    ...Object.entries(props)
      .filter(([, p]) => p.default !== undefined)
      .map(([n]) => n),
  ]);
  let out = "{\n";
  for (const [name, prop] of Object.entries(props)) {
    out += comment(prop.description, inner, limitsOf(prop));
    out += `${inner}${name}${required.has(name) ? "" : "?"}: ${typeOf(prop, inner)};\n`;
  }
  // Members the schema does not name are allowed unless it says otherwise (OpenEnv's extra="allow").
  if (extra !== false) out += `${inner}[extra: string]: unknown;\n`;
  return `${out}${indent}}`;
}

/** The TypeScript source of the wire types. */
export async function generateSdkTypes(): Promise<string> {
  const { schemas } = (await openApiDocument()).components;
  let out = `// Generated by scripts/generate-sdk-types.ts from the API's /openapi.json. Do not edit:
// change the schemas (functions/src/http/schemas.ts) and run \`npx tsx scripts/generate-sdk-types.ts\`.
// Field names are the protocol's (snake_case), as OpenEnv's coding_env models name them.
`;
  for (const name of Object.keys(schemas).sort()) {
    const schema = schemas[name] as JsonSchema;
    out += `\n${comment(schema.description, "")}`;
    const isObject = schema.type === "object" && schema.properties !== undefined;
    out += isObject
      ? `export interface ${name} ${objectType(schema, "")}\n`
      : `export type ${name} = ${typeOf(schema, "")};\n`;
  }
  return out;
}

async function main(): Promise<void> {
  const source = await generateSdkTypes();
  if (process.argv.includes("--check")) {
    const current = readFileSync(SDK_TYPES_PATH, "utf8");
    if (current !== source) {
      console.error(`${SDK_TYPES_PATH} is stale: run npx tsx scripts/generate-sdk-types.ts`);
      process.exit(1);
    }
    return;
  }
  writeFileSync(SDK_TYPES_PATH, source);
  console.log(`wrote ${SDK_TYPES_PATH}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
