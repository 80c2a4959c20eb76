/** The CDK context reader and the bundle inspection, without synthesizing the stack. */
import { describe, expect, it } from 'vitest';
import { readContext } from '../cdk/context.ts';
import { DeployError } from '../cdk/errors.ts';
import { GPU_WAIT } from '#lib/pipeline/gpuWait.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleImportsOnnxRuntime, vendorOnnxRuntime } from '../cdk/vendorOnnxRuntime.ts';

const from = (values: Record<string, unknown>) => (key: string) => values[key];

describe('readContext', () => {
  it('fills the defaults: one g5.xlarge type, Spot, hourly monitor, no schedules', () => {
    expect(readContext(from({}))).toMatchObject({
      gpuInstanceTypes: ['g5.xlarge'],
      spot: true,
      monitorRate: 'rate(1 hour)',
      schedules: [],
      scratchExpirationDays: 30,
    });
  });

  it('parses JSON given on the command line (-c key=value gives strings)', () => {
    const context = readContext(from({ 'agentflow:spot': 'false', 'agentflow:gpuInstanceTypes': '["g6.xlarge"]', 'agentflow:maxvCpus': '32' }));
    expect(context).toMatchObject({ spot: false, gpuInstanceTypes: ['g6.xlarge'], maxvCpus: 32 });
  });

  it('turns the spec-style schedule forms into EventBridge expressions', () => {
    const context = readContext(
      from({
        'agentflow:schedules': [
          { project: 'a', rate: '7 days', specUri: 's3://b/a.json' },
          { project: 'b', cron: 'cron(0 3 ? * MON *)', specUri: 's3://b/b.json', enabled: false },
        ],
      }),
    );
    expect(context.schedules).toEqual([
      { project: 'a', specUri: 's3://b/a.json', enabled: true, expression: 'rate(7 days)' },
      { project: 'b', specUri: 's3://b/b.json', enabled: false, expression: 'cron(0 3 ? * MON *)' },
    ]);
  });

  it.each([
    [
      { 'agentflow:schedules': [{ project: 'a', rate: '7 days', cron: '0 3 ? * MON *', specUri: 's3://b/a.json' }] },
      /agentflow:schedules\.0: give exactly one of cron or rate/,
    ],
    [{ 'agentflow:schedules': [{ project: 'a', rate: '7 days', specUri: './spec.json' }] }, /agentflow:schedules\.0\.specUri: expected the s3:\/\/ URI/],
    [{ 'agentflow:schedules': [{ project: 'a', cron: '0 3 * * *', specUri: 's3://b/a.json' }] }, /6 fields/],
    [{ 'agentflow:gpuInstanceTypes': [] }, /agentflow:gpuInstanceTypes/],
    [{ 'agentflow:monitorRate': 'every hour' }, /agentflow:monitorRate/],
  ])('rejects %j naming the key', (values, message) => {
    expect(() => readContext(from(values))).toThrow(message);
  });
});

describe('agentflow:maxGpuWaitMinutes', () => {
  it("defaults to GPU_WAIT and takes Batch's whole range, from -c strings too", () => {
    expect(readContext(from({})).maxGpuWaitMinutes).toBe(GPU_WAIT.defaultMinutes);
    expect(readContext(from({ 'agentflow:maxGpuWaitMinutes': GPU_WAIT.minMinutes })).maxGpuWaitMinutes).toBe(10);
    expect(readContext(from({ 'agentflow:maxGpuWaitMinutes': String(GPU_WAIT.maxMinutes) })).maxGpuWaitMinutes).toBe(1440);
  });

  it.each([
    [9, /agentflow:maxGpuWaitMinutes: Batch cancels RUNNABLE jobs after 10 minutes at the earliest; give 10\.\.1440/],
    [1441, /agentflow:maxGpuWaitMinutes: .*24 h.*give 10\.\.1440/],
    [12.5, /agentflow:maxGpuWaitMinutes: a whole number of minutes from 10 to 1440/],
    ['half an hour', /agentflow:maxGpuWaitMinutes: a whole number of minutes/],
  ])('rejects %j, naming the key and the range', (value, message) => {
    expect(() => readContext(from({ 'agentflow:maxGpuWaitMinutes': value }))).toThrow(DeployError);
    expect(() => readContext(from({ 'agentflow:maxGpuWaitMinutes': value }))).toThrow(message);
  });
});

describe('agentflow:existing*', () => {
  const all = { 'agentflow:existingBucket': 'agentflow-kept-1', 'agentflow:existingRegistryTable': 'Registry-1', 'agentflow:existingRewardTable': 'Rewards-1' };

  it('adopts nothing by default, all three together, or the bucket alone', () => {
    expect(readContext(from({})).existing).toEqual({});
    expect(readContext(from(all)).existing).toEqual({ bucket: 'agentflow-kept-1', registryTable: 'Registry-1', rewardTable: 'Rewards-1' });
    expect(readContext(from({ 'agentflow:existingBucket': 'agentflow-kept-1' })).existing).toEqual({ bucket: 'agentflow-kept-1' });
  });

  it.each([
    [
      { 'agentflow:existingRegistryTable': 'Registry-1', 'agentflow:existingRewardTable': 'Rewards-1' },
      /given without agentflow:existingBucket\. Existing tables are adopted together with the bucket/,
    ],
    [
      { 'agentflow:existingBucket': 'agentflow-kept-1', 'agentflow:existingRegistryTable': 'Registry-1' },
      /agentflow:existingBucket, agentflow:existingRegistryTable given without agentflow:existingRewardTable/,
    ],
    [
      { ...all, 'agentflow:existingBucket': 'arn:aws:s3:::agentflow-kept-1' },
      /agentflow:existingBucket: the name \(not the ARN or s3:\/\/ URI\) of an existing S3 bucket/,
    ],
    [
      { ...all, 'agentflow:existingRewardTable': 'arn:aws:dynamodb:us-east-1:123456789012:table/Rewards-1' },
      /agentflow:existingRewardTable: the name \(not the ARN\) of an existing DynamoDB table/,
    ],
  ])('rejects %j with the keys and the fix', (values, message) => {
    expect(() => readContext(from(values))).toThrow(DeployError);
    expect(() => readContext(from(values))).toThrow(message);
  });
});

describe('bundleImportsOnnxRuntime', () => {
  it.each([
    ['import{InferenceSession as o}from"onnxruntime-node";', true],
    ['import * as ort from "onnxruntime-node";', true],
    ['const m = await import("onnxruntime-node");', true],
    ['var o=require("onnxruntime-node");', true],
    ['throw new Error("install onnxruntime-node to run this")', false],
    ['import{x}from"onnxruntime-common";', false],
  ])('%s → %s', (source, expected) => {
    expect(bundleImportsOnnxRuntime(source)).toBe(expected);
  });
});

describe('vendorOnnxRuntime with the runsModel declaration', () => {
  const projectRoot = resolve(import.meta.dirname, '..');
  const bundle = (source: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'agentflow-vendor-'));
    writeFileSync(join(dir, 'index.mjs'), source);
    return dir;
  };

  it.each([
    [
      'feedback',
      false,
      'import{InferenceSession as o}from"onnxruntime-node";',
      /function "feedback" runs no model \(runsModel: false in cdk\/functions\.ts\), but its bundle imports onnxruntime-node.*Import the lib\/ modules it needs directly/,
    ],
    [
      'infer',
      true,
      'export const handler = async () => 1;',
      /function "infer" is marked runsModel: true in cdk\/functions\.ts, but its bundle does not import onnxruntime-node; mark it runsModel: false/,
    ],
  ])('fails bundling when %s (runsModel %s) disagrees with its bundle', (handler, runsModel, source, message) => {
    const dir = bundle(source);
    try {
      expect(() => vendorOnnxRuntime({ bundleDir: dir, projectRoot, declared: { handler, runsModel } })).toThrow(message);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ships nothing for a function that runs no model and imports none', () => {
    const dir = bundle('export const handler = async () => 1;');
    try {
      expect(vendorOnnxRuntime({ bundleDir: dir, projectRoot, declared: { handler: 'plan', runsModel: false } }).shipped).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
