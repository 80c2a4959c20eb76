/**
 * How the Lambda functions are bundled: esbuild on this machine (no Docker), ESM with a
 * `createRequire` banner for the CommonJS dependencies, and onnxruntime-node kept external and
 * copied beside every bundle that imports it, with only its linux-x64 binaries
 * (see vendorOnnxRuntime.ts).
 */
import { OutputFormat, SourceMapMode, type BundlingOptions, type ICommandHooks } from 'aws-cdk-lib/aws-lambda-nodejs';
import { ONNX_RUNTIME_PACKAGE, vendorCommand } from './vendorOnnxRuntime.ts';
import type { FunctionSpec } from './functions.ts';
/** A banner so bundled CommonJS code can still `require` in an ES module (`.mjs`) output. */
export const ESM_REQUIRE_BANNER =
  "import { createRequire as __agentflowCreateRequire } from 'node:module'; const require = __agentflowCreateRequire(import.meta.url);";

/** The esbuild settings of every function bundle; bench/bundles.ts builds with the same ones. */
export const BUNDLE_SETTINGS = {
  format: 'esm',
  target: 'node22',
  mainFields: ['module', 'main'],
  banner: ESM_REQUIRE_BANNER,
  minify: true,
  externalModules: [ONNX_RUNTIME_PACKAGE],
} as const;

/** Bundling options for one function; the afterBundling hook ships ONNX Runtime where the function runs a model, and fails where it would ship it otherwise. */
export function bundlingFor(options: { projectRoot: string; spec?: Pick<FunctionSpec, 'handler' | 'runsModel'> }): BundlingOptions {
  const declared = options.spec ? { handler: options.spec.handler, runsModel: options.spec.runsModel } : undefined;
  const hooks: ICommandHooks = {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (_inputDir, outputDir) => [vendorCommand({ bundleDir: outputDir, projectRoot: options.projectRoot, ...(declared ? { declared } : {}) })],
  };
  return {
    forceDockerBundling: false,
    format: OutputFormat.ESM,
    target: BUNDLE_SETTINGS.target,
    mainFields: [...BUNDLE_SETTINGS.mainFields],
    banner: BUNDLE_SETTINGS.banner,
    // Linked source maps: with NODE_OPTIONS=--enable-source-maps, stack traces name the .ts lines.
    sourceMap: true,
    sourceMapMode: SourceMapMode.DEFAULT,
    sourcesContent: false,
    minify: BUNDLE_SETTINGS.minify,
    // The SDK is bundled at the locked version rather than taken from the runtime (which lags and may
    // lack lib-storage). A native addon cannot be bundled, so onnxruntime-node is external everywhere;
    // the afterBundling hook ships it with each bundle that imports it.
    bundleAwsSDK: true,
    externalModules: [...BUNDLE_SETTINGS.externalModules],
    commandHooks: hooks,
  };
}
