/**
 * Ships onnxruntime-node beside a Lambda bundle that imports it: copies the installed package
 * (and onnxruntime-common) into `<bundle>/node_modules` with only the linux-x64 CPU binaries.
 * Run by the bundling `afterBundling` hook as `node --import tsx cdk/vendorOnnxRuntime.ts <bundle>`.
 *
 * Why copy instead of `nodeModules`: `nodeModules` runs `npm ci` inside every asset at synth, which
 * needs the registry and re-downloads onnxruntime-node (whose linux-x64 install also fetches the
 * CUDA provider, which Lambda cannot use). The package installed from the lock file is the
 * same version, its npm tarball carries every platform's binaries, and copying works offline.
 *
 * Why detect and declare: a function whose bundle imports the package but does not ship it fails at
 * cold start with ERR_MODULE_NOT_FOUND, so what ships follows what the bundle imports; and
 * `runsModel` in cdk/functions.ts says which functions may import it, so a barrel import that drags
 * the package and a native library load into Plan or Feedback fails the synth instead of shipping.
 */
import { cpSync, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeployError } from './errors.ts';

export const ONNX_RUNTIME_PACKAGE = 'onnxruntime-node';
const COMMON_PACKAGE = 'onnxruntime-common';

/** Lambda's limit on a function's unzipped code (layers included): 250 MB. */
export const LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024;

/** Only the Lambda platform's binaries; GPU providers are useless there and would crowd the size limit. */
const KEEP_PLATFORM = 'linux';
const KEEP_ARCH = 'x64';
const DROPPED_LIBRARIES = /^libonnxruntime_providers_(cuda|tensorrt|shared)/;

/** Whether an esbuild ESM bundle imports the package (static import, dynamic import, or require). */
export function bundleImportsOnnxRuntime(bundleSource: string): boolean {
  return /(?:\bfrom|\bimport|\brequire)\s*\(?\s*["']onnxruntime-node["']/.test(bundleSource);
}

/** The folder of an installed package, resolved the way Node would from `fromDir`. */
export function packageDir(name: string, fromDir: string): string {
  const require = createRequire(join(fromDir, 'noop.js'));
  let dir = dirname(require.resolve(name));
  // Walk up from the package's main file to its own package.json (`exports` may hide `./package.json`).
  while (dir !== dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === name) return dir;
    dir = dirname(dir);
  }
  throw new DeployError(`cannot find the installed ${name} package from ${fromDir}; run npm ci`, { code: 'ENTRY_MISSING', context: { name, fromDir } });
}

/** Keeps `bin/napi-v*\/linux/x64/*` minus GPU providers; everything outside `bin/` is kept. */
function keepBinary(packageRoot: string, path: string): boolean {
  const parts = relative(packageRoot, path).split(sep);
  if (parts[0] !== 'bin') return true;
  // bin / napi-vN / platform / arch / file
  if (parts.length >= 3 && parts[2] !== KEEP_PLATFORM) return false;
  if (parts.length >= 4 && parts[3] !== KEEP_ARCH) return false;
  if (parts.length >= 5 && DROPPED_LIBRARIES.test(parts[4])) return false;
  return true;
}

export function directorySizeBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += directorySizeBytes(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

export interface VendorResult {
  shipped: boolean;
  /** The bundle folder's size after copying, in bytes. */
  sizeBytes: number;
}

/**
 * Copies onnxruntime-node into `<bundleDir>/node_modules` when `<bundleDir>/index.mjs` imports it,
 * and fails if the result would not fit Lambda's unzipped limit or lacks the linux-x64 binding.
 */
export interface VendorOptions {
  bundleDir: string;
  projectRoot: string;
  /** The function's declaration (FunctionSpec.runsModel) and name; when given, the bundle must agree with it. */
  declared?: { handler: string; runsModel: boolean };
}

export function vendorOnnxRuntime(options: VendorOptions): VendorResult {
  const bundle = join(options.bundleDir, 'index.mjs');
  const imports = bundleImportsOnnxRuntime(readFileSync(bundle, 'utf8'));
  checkDeclared(options.declared, imports);
  if (!imports) return { shipped: false, sizeBytes: directorySizeBytes(options.bundleDir) };

  const ortDir = packageDir(ONNX_RUNTIME_PACKAGE, options.projectRoot);
  const commonDir = packageDir(COMMON_PACKAGE, ortDir);
  const modules = join(options.bundleDir, 'node_modules');
  cpSync(ortDir, join(modules, ONNX_RUNTIME_PACKAGE), { recursive: true, dereference: true, filter: (src) => keepBinary(ortDir, src) });
  cpSync(commonDir, join(modules, COMMON_PACKAGE), { recursive: true, dereference: true });

  const bin = join(modules, ONNX_RUNTIME_PACKAGE, 'bin');
  const bindings = existsSync(bin) ? readdirSync(bin).filter((napi) => existsSync(join(bin, napi, KEEP_PLATFORM, KEEP_ARCH, 'onnxruntime_binding.node'))) : [];
  if (!bindings.length) {
    throw new DeployError(`${ortDir} has no ${KEEP_PLATFORM}-${KEEP_ARCH} binding under bin/napi-v*/; reinstall ${ONNX_RUNTIME_PACKAGE} with npm ci`, {
      code: 'ENTRY_MISSING',
      context: { ortDir },
    });
  }
  const sizeBytes = directorySizeBytes(options.bundleDir);
  if (sizeBytes > LAMBDA_UNZIPPED_LIMIT_BYTES) {
    throw new DeployError(
      `${options.bundleDir} is ${(sizeBytes / 2 ** 20).toFixed(1)} MiB unzipped, over Lambda's 250 MB limit; check what the bundle pulls in`,
      {
        code: 'WIRING_INCOMPLETE',
        context: { bundleDir: options.bundleDir, sizeBytes },
      },
    );
  }
  return { shipped: true, sizeBytes };
}

function checkDeclared(declared: VendorOptions['declared'], imports: boolean): void {
  if (!declared || declared.runsModel === imports) return;
  const message = declared.runsModel
    ? `function "${declared.handler}" is marked runsModel: true in cdk/functions.ts, but its bundle does not import ${ONNX_RUNTIME_PACKAGE}; mark it runsModel: false`
    : `function "${declared.handler}" runs no model (runsModel: false in cdk/functions.ts), but its bundle imports ${ONNX_RUNTIME_PACKAGE} (48 MB and a native library load at cold start). ` +
      'Import the lib/ modules it needs directly rather than a barrel that re-exports model code (lib/serve/index.ts, lib/pipeline/handlers.ts), or mark it runsModel: true if it does run one';
  throw new DeployError(message, { code: 'WIRING_INCOMPLETE', context: { ...declared, importsOnnxRuntime: imports } });
}

/** The command the bundling hook runs for one bundle (bash or cmd; paths double-quoted). */
export function vendorCommand(options: VendorOptions): string {
  const script = fileURLToPath(import.meta.url);
  const declared = options.declared ? [options.declared.handler, String(options.declared.runsModel)] : [];
  return [process.execPath, '--import', 'tsx', script, options.bundleDir, options.projectRoot, ...declared].map((arg) => JSON.stringify(arg)).join(' ');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [bundleDir, projectRoot, handler, runsModel] = process.argv.slice(2);
  if (!bundleDir || !projectRoot || (handler !== undefined && runsModel !== 'true' && runsModel !== 'false')) {
    process.stderr.write('usage: node --import tsx cdk/vendorOnnxRuntime.ts <bundleDir> <projectRoot> [<handler> true|false]\n');
    process.exit(2);
  }
  const result = vendorOnnxRuntime({ bundleDir, projectRoot, ...(handler ? { declared: { handler, runsModel: runsModel === 'true' } } : {}) });
  process.stderr.write(`${ONNX_RUNTIME_PACKAGE}: ${result.shipped ? 'shipped' : 'not imported'}; bundle ${(result.sizeBytes / 2 ** 20).toFixed(1)} MiB\n`);
}
