#!/usr/bin/env node
import { createApp } from "../lib/coding-env-stack.js";
// The CDK app of coding-env (cdk.json: "node --import tsx infra/bin/app.ts": no npx and no tsx CLI
// process in front of it). Configuration: `coding-env:*` context keys (infra/lib/config.ts, docs/DEPLOY.md).
import { ContextValueError } from "../lib/config.js";
import { CodingEnvironmentPropsError } from "../lib/props.js";

// The AWS SDK's Node-version notice is noise in `cdk synth`/`deploy` output ("false" shows it).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

try {
  createApp().app.synth();
} catch (err) {
  // A bad `-c coding-env:*` value (or a prop it leads to) is the user's to fix: its message, one
  // line, no stack trace. Anything else is a bug and keeps its trace.
  if (err instanceof ContextValueError || err instanceof CodingEnvironmentPropsError) {
    console.error(`coding-env: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
