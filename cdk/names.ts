/**
 * Physical names for the few resources that need one. A fixed name breaks the next deploy when
 * the resource is retained (a log group after `cdk destroy`, or after a failed first deploy rolled
 * back): CloudFormation then fails with "already exists". The stack id's UUID is new for every
 * stack instance, so a name that carries it never meets a leftover of an earlier one.
 */
import { Fn, Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/** The UUID part of the stack id (`arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<uuid>`), as a token. */
export function stackInstanceId(scope: IConstruct): string {
  return Fn.select(2, Fn.split('/', Stack.of(scope).stackId));
}

/** `<prefix><stack name>-<purpose>-<stack uuid>`: readable in the console, unique per stack instance. */
export function perStackInstanceName(scope: IConstruct, options: { prefix?: string; purpose: string }): string {
  return `${options.prefix ?? ''}${Stack.of(scope).stackName}-${options.purpose}-${stackInstanceId(scope)}`;
}
