#!/usr/bin/env node
// The CDK app of coding-env (cdk.json: "npx tsx infra/bin/app.ts"). Configuration: `coding-env:*`
// context keys (infra/lib/config.ts, docs/DEPLOY.md).
import { createApp } from "../lib/coding-env-stack.js";

createApp().app.synth();
