// The root globalSetup (test/global-setup.ts) starts one local stack and provides its URL.
declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
  }
}

export {};
