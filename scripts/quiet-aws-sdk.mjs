// Preloaded (`node --import ./scripts/quiet-aws-sdk.mjs …`) by npm scripts whose processes use the
// AWS SDK: its once-per-process notice that its 2027 releases need Node 22 is noise in a
// command's output. Child processes inherit the setting. Set the variable to "false" to see it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
