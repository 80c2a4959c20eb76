/** The CDK context reader and the bundle inspection, without synthesizing the stack. */
import { describe, expect, it } from 'vitest';
import { readContext } from '../cdk/context.ts';
import { bundleImportsOnnxRuntime } from '../cdk/vendorOnnxRuntime.ts';

const from = (values: Record<string, unknown>) => (key: string) => values[key];

describe('readContext', () => {
  it('fills the defaults: one g5.xlarge type, Spot, hourly monitor, no schedules', () => {
    expect(readContext(from({}))).toMatchObject({ gpuInstanceTypes: ['g5.xlarge'], spot: true, monitorRate: 'rate(1 hour)', schedules: [], scratchExpirationDays: 30 });
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
    [{ 'agentflow:schedules': [{ project: 'a', rate: '7 days', cron: '0 3 ? * MON *', specUri: 's3://b/a.json' }] }, /agentflow:schedules\.0: give exactly one of cron or rate/],
    [{ 'agentflow:schedules': [{ project: 'a', rate: '7 days', specUri: './spec.json' }] }, /agentflow:schedules\.0\.specUri: expected the s3:\/\/ URI/],
    [{ 'agentflow:schedules': [{ project: 'a', cron: '0 3 * * *', specUri: 's3://b/a.json' }] }, /6 fields/],
    [{ 'agentflow:gpuInstanceTypes': [] }, /agentflow:gpuInstanceTypes/],
    [{ 'agentflow:monitorRate': 'every hour' }, /agentflow:monitorRate/],
  ])('rejects %j naming the key', (values, message) => {
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
