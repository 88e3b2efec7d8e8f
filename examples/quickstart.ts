// The seed README's quick start, with the TypeScript SDK.
// Run against a local stack (`npm start`) or a deployment:
//   CODING_ENV_URL=http://localhost:8000 npx tsx examples/quickstart.ts
// (`npm install` builds the SDK; in a project of your own, install its tarball: sdk/README.md)
import { type CodeAction, CodingEnv } from "@coding-env/sdk";

// `await using` deletes the episode when the block ends (OpenEnv's `finally: coding_env.close()`).
await using codingEnv = new CodingEnv(); // CODING_ENV_URL, else http://localhost:8000

// Reset
const reset = await codingEnv.reset();
console.log(`Reset complete: exit_code=${reset.observation.exit_code}`);

// Execute Python code
const codeSamples = [
  "print('Hello, World!')",
  "x = 5 + 3\nprint(f'Result: {x}')",
  "import math\nprint(math.pi)",
];

for (const code of codeSamples) {
  const action: CodeAction = { code };
  const result = await codingEnv.step(action);
  console.log(`Code: ${code}`);
  console.log(` → stdout: ${result.observation.stdout.trim()}`);
  console.log(` → exit_code: ${result.observation.exit_code}`);
}

// Errors in the code are data, not exceptions.
const failed = await codingEnv.step("1 / 0");
console.log(` → stderr: ${failed.observation.stderr.trim().split("\n").at(-1)}`);

const state = await codingEnv.state();
console.log(`State: episode_id=${state.episode_id} step_count=${state.step_count}`);
