// vitest setupFile of every project. A worker runs its files one after another in one process
// (`isolate: false` in vitest.config.ts), so what one file leaves in the process the next one
// would see. This gives each file what a process of its own would (but the packages under
// node_modules, loaded once per worker, which is what sharing saves):
// - the repository's own modules evaluated afresh, so no file sees another's module state (caches,
//   counters, a module evaluated over another file's `vi.mock`; vitest keeps mocks per file);
// - the environment variables as the file found them, whatever it or a package it imported set
//   (Powertools sets AWS_SDK_UA_APP_ID when first imported);
// - real timers, no stubbed globals and no spies left on shared objects (`vi.spyOn`).
import { afterAll, vi } from "vitest";

vi.resetModules();
const environment = { ...process.env };

afterAll(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
  vi.unstubAllEnvs();
  for (const name of Object.keys(process.env)) if (!(name in environment)) delete process.env[name];
  for (const [name, value] of Object.entries(environment)) {
    if (process.env[name] !== value) process.env[name] = value;
  }
});
