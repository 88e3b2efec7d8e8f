// Values the global setup provides to every test file (read with `inject("baseUrl")`).
declare module "vitest" {
  interface ProvidedContext {
    baseUrl: string;
  }
}

export {};
