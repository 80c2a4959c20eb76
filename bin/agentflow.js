#!/usr/bin/env node
// The installed `agentflow` command: the TypeScript CLI through tsx's loader.
import { register } from 'tsx/esm/api';

register();
await import('../functions/cli.ts');
