import { makeClients, type AgentflowConfig, type AwsClients } from '#lib/adapters/config/index.ts';
import { ModelRegistry, RewardLog, RunLog } from '#lib/adapters/registry/index.ts';
import { ArtifactStore } from '#lib/adapters/store/index.ts';

/** What every stage handler needs, built once per process (a Lambda container or the local runtime). */
export interface StageDependencies {
  config: AgentflowConfig;
  clients: AwsClients;
  store: ArtifactStore;
  /** Versions, aliases, serving sets. */
  registry: ModelRegistry;
  /** Runs and their events; the same table as `registry`, its own items. */
  runLog: RunLog;
  rewards: RewardLog;
}

export function stageDependencies(config: AgentflowConfig, clients: AwsClients = makeClients(config)): StageDependencies {
  return {
    config,
    clients,
    store: new ArtifactStore({ s3: clients.s3, bucket: config.bucket }),
    registry: new ModelRegistry({ dynamodb: clients.dynamodb, tableName: config.registryTable }),
    runLog: new RunLog({ dynamodb: clients.dynamodb, tableName: config.registryTable }),
    rewards: new RewardLog({ dynamodb: clients.dynamodb, tableName: config.rewardTable }),
  };
}
