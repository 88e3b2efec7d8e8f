// Walks an /openapi.json schema for the contract tests: every field a user sees in Swagger UI says
// what it is (a `$ref` field is described by the schema it points to).

type Json = Record<string, unknown>;

/** Paths (`Schema.field.inner[]`) of the fields under `schema` that have no description. */
export function undescribedFields(schema: Json, where: string): string[] {
  const missing: string[] = [];
  const visit = (node: Json, at: string): void => {
    const props = (node.properties ?? {}) as Record<string, Json>;
    for (const [name, prop] of Object.entries(props)) {
      if (prop.$ref === undefined && typeof prop.description !== "string") missing.push(`${at}.${name}`);
      visit(prop, `${at}.${name}`);
      if (prop.items) visit(prop.items as Json, `${at}.${name}[]`);
    }
  };
  visit(schema, where);
  return missing;
}
