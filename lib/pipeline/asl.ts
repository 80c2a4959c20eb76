/**
 * The subset of Amazon States Language (JSONPath flavour) that agentflow's workflow uses, as types.
 * Deliberately small: no JSONata, no `Assign`, no Distributed Map, so the same JSON runs on
 * Step Functions and on aws-local-stepfunctions.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type PayloadTemplate = { [key: string]: JsonValue };

export interface Retrier {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  MaxAttempts?: number;
  BackoffRate?: number;
  MaxDelaySeconds?: number;
  JitterStrategy?: 'FULL' | 'NONE';
}

export interface Catcher {
  ErrorEquals: string[];
  Next: string;
  ResultPath?: string | null;
}

interface Transition {
  Next?: string;
  End?: true;
}

interface StateBase {
  Comment?: string;
  InputPath?: string | null;
  OutputPath?: string | null;
}

export interface TaskState extends StateBase, Transition {
  Type: 'Task';
  Resource: string;
  Parameters?: PayloadTemplate;
  ResultSelector?: PayloadTemplate;
  ResultPath?: string | null;
  TimeoutSeconds: number;
  Retry?: Retrier[];
  Catch?: Catcher[];
}

export interface MapState extends StateBase, Transition {
  Type: 'Map';
  ItemsPath: string;
  ItemSelector?: PayloadTemplate;
  MaxConcurrency?: number;
  MaxConcurrencyPath?: string;
  ItemProcessor: { ProcessorConfig?: { Mode: 'INLINE' }; StartAt: string; States: Record<string, State> };
  ResultSelector?: PayloadTemplate;
  ResultPath?: string | null;
  Retry?: Retrier[];
  Catch?: Catcher[];
}

export interface PassState extends StateBase, Transition {
  Type: 'Pass';
  Parameters?: PayloadTemplate;
  Result?: JsonValue;
  ResultPath?: string | null;
}

export interface ChoiceCondition {
  Variable: string;
  BooleanEquals?: boolean;
  /** `*` matches any run of characters. */
  StringMatches?: string;
  /** Guards a comparison: comparing a path that is absent is an uncatchable States.Runtime. */
  IsPresent?: boolean;
}

export type ChoiceRule = (ChoiceCondition | { And: ChoiceCondition[] }) & { Next: string };

export interface ChoiceState extends StateBase {
  Type: 'Choice';
  Choices: ChoiceRule[];
  Default?: string;
}

export interface SucceedState extends StateBase {
  Type: 'Succeed';
}

export interface FailState {
  Type: 'Fail';
  Comment?: string;
  Error?: string;
  ErrorPath?: string;
  Cause?: string;
  CausePath?: string;
}

export type State = TaskState | MapState | PassState | ChoiceState | SucceedState | FailState;

export interface StateMachineDefinition {
  Comment?: string;
  StartAt: string;
  States: Record<string, State>;
}
