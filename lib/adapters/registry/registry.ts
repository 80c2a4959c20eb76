/**
 * The registry table through one object, for callers that use both halves (the stages, the CLI):
 * the model registry (versions, aliases, serving set) and the run log (runs and their events)
 * share the table and its client. Each half is usable on its own: `ModelRegistry`, `RunLog`.
 */
import { ModelRegistry, type ModelRegistryOptions } from './modelRegistry.ts';
import { RunLog, type NewRun, type RunError, type RunEvent, type RunRecord, type RunStatus } from './runLog.ts';

export type RegistryOptions = ModelRegistryOptions;

export class Registry extends ModelRegistry {
  readonly runLog: RunLog;

  constructor(options: RegistryOptions) {
    super(options);
    this.runLog = new RunLog(options);
  }

  createRun(run: NewRun): Promise<{ run: RunRecord; created: boolean }> {
    return this.runLog.createRun(run);
  }

  findRun(project: string, runId: string): Promise<RunRecord | undefined> {
    return this.runLog.findRun(project, runId);
  }

  getRun(project: string, runId: string): Promise<RunRecord> {
    return this.runLog.getRun(project, runId);
  }

  updateRunStatus(project: string, runId: string, status: RunStatus, options: { stage?: string; error?: RunError } = {}): Promise<RunRecord> {
    return this.runLog.updateRunStatus(project, runId, status, options);
  }

  reopenRun(project: string, runId: string): Promise<RunRecord> {
    return this.runLog.reopenRun(project, runId);
  }

  listRuns(project: string, options: { limit?: number } = {}): Promise<RunRecord[]> {
    return this.runLog.listRuns(project, options);
  }

  recordRunEvent(project: string, runId: string, eventKey: string, detail: Record<string, unknown>): Promise<boolean> {
    return this.runLog.recordRunEvent(project, runId, eventKey, detail);
  }

  listRunEvents(project: string, runId: string): Promise<RunEvent[]> {
    return this.runLog.listRunEvents(project, runId);
  }
}
