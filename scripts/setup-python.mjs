// npm postinstall: find or prepare the Python the runtime uses. Never fails the install: when
// nothing can be done it prints how to fix it and exits 0.
import { resolvePython } from "./python.mjs";

try {
  const python = await resolvePython();
  console.log(`coding-env: Python runtime interpreter: ${python}`);
} catch (error) {
  console.warn(`coding-env: ${error instanceof Error ? error.message : String(error)}`);
}
