/** The run report: one self-contained HTML page per run, with charts, stored in S3 and as a local file. */
export { buildRunReport, defaultReportPath, loadChartLibrary, writeRunReport, type RunReport, type WrittenRunReport } from './report.ts';
export {
  collectRunReport,
  readRunHistory,
  type RunHistory,
  orderTrials,
  type ChartId,
  type ReportArm,
  type ReportDependencies,
  type ReportPromotion,
  type ReportServing,
  type ReportTask,
  type ReportTrial,
  type RunReportData,
} from './data.ts';
export { renderRunReport } from './html.ts';
export { ReportError, type ReportErrorCode } from './errors.ts';
export { LoopTimelineSchema, loopFigures, readLoopTimeline, writeLoopTimeline, type LoopTimeline } from './loop.ts';
