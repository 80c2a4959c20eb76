import * as z from 'zod';
import { checkLabel } from '#lib/domain/datasets/index.ts';
import { RegistryError, type LoggedInputs } from '#lib/adapters/registry/index.ts';
import { CardServing } from '#lib/domain/run/index.ts';
import { renderValue } from '#lib/domain/spec/index.ts';
import type { ServeBase } from './base.ts';
import { ServeError, badRequest } from './errors.ts';
import { handleFunctionUrl, type FunctionUrlResult } from './http.ts';
import { projectField, parseRequest } from './requests.ts';

export const feedbackRequestSchema = z.strictObject({
  project: projectField,
  predictionId: z
    .string({ error: (issue) => `is ${renderValue(issue.input)}; send the predictionId string that infer returned` })
    .min(1, { error: () => 'is empty; send the predictionId that infer returned' })
    .max(128, { error: () => 'is longer than 128 characters; send the predictionId that infer returned' })
    .refine((id) => !id.includes('#'), {
      error: (issue) => `${renderValue(issue.input)} contains "#", which no prediction id does; send the id infer returned`,
    }),
  reward: z.number({ error: (issue) => `is ${renderValue(issue.input)}; send the reward as a finite number (0 or 1 for yes/no outcomes)` }),
  /** The true labels, per task (`{ "species": "Gentoo" }`), for a project that keeps feedback as data (`datasets.feedback`). */
  label: z
    .record(z.string(), z.unknown(), {
      error: (issue) => `is ${renderValue(issue.input)}; send an object of task name to true label, e.g. {"species": "Gentoo"}`,
    })
    .optional(),
});

export type FeedbackRequest = z.infer<typeof feedbackRequestSchema>;

export interface FeedbackResponse {
  project: string;
  predictionId: string;
  version: number;
  reward: number;
  /** The labels the prediction became a training row with, per task (absent when none). */
  labels?: Record<string, unknown>;
}

const EXAMPLE = '{"project": "my-project", "predictionId": "…", "reward": 1}';

/**
 * The arm counters add each reward and its square, and DynamoDB numbers as the SDK writes them
 * stay within ±2^53 (and above 1e-130 in magnitude): a reward of 1e100 or 1e-100 would fail the
 * counter write after the reward row is already kept. ±1e6 leaves room for ~9,000 such squares.
 */
const MAX_REWARD = 1e6;
const MIN_REWARD = 1e-9;

/**
 * Credits a reward to the version that served a prediction — read from the signed id, so an id
 * Infer never issued is refused — exactly once (the reward log's conditional write), which moves
 * that version's arm counters. The project's reward kind decides
 * what a reward may be: 0 or 1 for `bernoulli`, any finite number for `gaussian`.
 */
export async function feedback(body: unknown, context: ServeBase): Promise<FeedbackResponse> {
  const request = parseRequest(feedbackRequestSchema, body, EXAMPLE);
  const { rewardKind } = (await context.routing.get(request.project)).settings;
  if (rewardKind === 'bernoulli' && request.reward !== 0 && request.reward !== 1) {
    throw badRequest(
      `reward ${request.reward} is not 0 or 1: ${request.project} routes on 0/1 rewards (bernoulli); send 1 for a good outcome and 0 for a bad one, or set the project's reward kind to gaussian for real-valued rewards`,
      { project: request.project, reward: request.reward, rewardKind },
    );
  }
  const magnitude = Math.abs(request.reward);
  if (magnitude > MAX_REWARD || (magnitude > 0 && magnitude < MIN_REWARD)) {
    throw badRequest(
      `reward ${request.reward} is ${magnitude > MAX_REWARD ? `beyond ±${MAX_REWARD}` : `too close to zero (under ${MIN_REWARD} in magnitude)`}, which the arm counters cannot keep exactly; scale the rewards to a range such as 0 to 1 or -100 to 100, or send 0`,
      { project: request.project, reward: request.reward },
    );
  }
  const { version: servedBy } = await context.predictionIds.verify(request.project, request.predictionId);
  // Only a label or a 0/1 reward (which a `rewardIsLabel` project takes as one) needs the kept inputs.
  const logged =
    request.label !== undefined || rewardKind === 'bernoulli' ? await context.deps.rewards.getLoggedInputs(request.project, request.predictionId) : undefined;
  const labels = labelsOf(request, logged);
  try {
    const { version, reward } = await context.deps.rewards.recordFeedback(request.project, request.predictionId, request.reward, {
      version: servedBy,
      retentionSeconds: context.predictionIds.retentionSeconds,
      ...(labels ? { labels } : {}),
    });
    // After the exactly-once write: a second feedback for the prediction never relabels its row.
    if (labels) await context.deps.rewards.labelLoggedInputs(request.project, request.predictionId, labels);
    context.metrics.reward(request.project, version, reward);
    return { project: request.project, predictionId: request.predictionId, version, reward, ...(labels ? { labels } : {}) };
  } catch (error) {
    if (error instanceof RegistryError && error.code === 'FEEDBACK_DUPLICATE') {
      throw new ServeError(error.message, { code: 'FEEDBACK_DUPLICATE', context: error.context, cause: error });
    }
    throw error;
  }
}

/**
 * The labels a feedback gives its prediction, checked as Prepare checks a dataset label, against
 * the rules of the version that served it (kept with its inputs): the `label` field, plus the 0/1
 * reward for the task the project marks `rewardIsLabel` when the label does not name it.
 * Undefined when the feedback labels nothing.
 */
function labelsOf(request: FeedbackRequest, logged: LoggedInputs | undefined): Record<string, unknown> | undefined {
  const given = request.label ?? {};
  if (logged === undefined) {
    if (Object.keys(given).length === 0) return undefined;
    throw badRequest(
      `label was sent, but ${request.project} kept no inputs for prediction "${request.predictionId}", so it cannot become a training row; set "datasets": {"feedback": true} in the project's spec and retrain (versions trained from it keep their inputs), or send the feedback without label`,
      { project: request.project, predictionId: request.predictionId },
    );
  }
  const rules = CardServing.shape.feedback.unwrap().parse(logged.rules);
  const labels: Record<string, unknown> = {};
  for (const [task, value] of Object.entries(given)) {
    const rule = rules.tasks.find((candidate) => candidate.name === task);
    if (rule === undefined) {
      throw badRequest(
        `label names task ${renderValue(task)}, which ${request.project} version ${logged.version} does not have; label one of its tasks: ${rules.tasks.map((t) => t.name).join(', ')}`,
        {
          project: request.project,
          task,
          tasks: rules.tasks.map((t) => t.name),
        },
      );
    }
    const checked = checkLabel(rule, value);
    if ('message' in checked) {
      throw badRequest(`label for task "${task}" of ${request.project}: ${checked.message}; send the task's true label as a training row would hold it`, {
        project: request.project,
        task,
        value: renderValue(value),
      });
    }
    labels[task] = value;
  }
  const rewardTask = rules.rewardIsLabel === undefined ? undefined : rules.tasks.find((t) => t.name === rules.rewardIsLabel);
  if (rewardTask?.type === 'binary' && !(rewardTask.name in labels) && (request.reward === 0 || request.reward === 1)) {
    // With `positive`, only those values mean 1: the reward 1 is written as the first of them.
    labels[rewardTask.name] = request.reward === 1 && rewardTask.positive?.length ? rewardTask.positive[0] : request.reward;
  }
  return Object.keys(labels).length > 0 ? labels : undefined;
}

/** POST /feedback as a Function URL handler (the Lambda handler and the local server both call it); it needs no model, only the serving base. */
export function handleFeedbackEvent(event: unknown, context: ServeBase): Promise<FunctionUrlResult> {
  return handleFunctionUrl(event, context, async (body, base) => JSON.stringify(await feedback(body, base)), 'feedback');
}
