import { trainRowSource } from '#lib/pipeline/embed/rows.ts';
import { encoderCandidates, fitEncoder } from '#lib/domain/encoders/index.ts';
import type { ArtifactStore } from '#lib/adapters/store/index.ts';
import type { PrepareDependencies } from './prepare.ts';
import type { EncoderEntry } from '#lib/domain/run/index.ts';

/**
 * Fits every base-model candidate on the train split (never validation or holdout rows) and stores
 * each fitted graph under a content-addressed key, so refitting the same data is a no-op write.
 * A tabular model with `numericEncoding: "auto"` is three candidates (standard, quantile, ple),
 * which screening then chooses between like any other encoders.
 */
export function fitEncodersInStore(store: ArtifactStore): PrepareDependencies['fitEncoders'] {
  return async ({ spec, datasets, split }) => {
    const rows = trainRowSource(store, { spec, datasets, split });
    const entries: EncoderEntry[] = [];
    for (const [index, baseModel] of encoderCandidates(spec.baseModels).entries()) {
      const fitted = await fitEncoder(baseModel, rows, { resolveFile: (uri) => store.getBytes(uri) });
      const stored = await store.putContentAddressed('encoders', fitted.model, { extension: '.onnx' });
      entries.push({
        id: `e${index}`,
        kind: fitted.kind,
        uri: stored.uri,
        sha256: stored.sha256,
        dimension: fitted.dimension,
        summary: fitted.summary,
        ...(fitted.categoryEmbeddings ? { categoryEmbeddings: fitted.categoryEmbeddings } : {}),
      });
    }
    return entries;
  };
}
