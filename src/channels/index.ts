/** Channel pruning: DI, DCP, GFBS, L1 and random scorers/finetuners searched by NCS under a FLOPs budget. */
export { pruneChannels, resolveChannelsConfig, type ChannelsOptions, type ChannelsReport, type GroupRecord } from './run.js';
export { runComparison, comparisonMarkdown, comparisonCsv, formatComparison, COMPARE_BUDGETS, type CompareOptions, type CompareRow, type ComparisonResult } from './compare.js';
export { METHOD_NAMES, OBJECTIVES, defaultChannelsConfig, validateChannelsConfig, channelModelNames, type ChannelsConfig, type MethodName, type Objective } from './config.js';
export { createMethod, finetuneSgd, diRoundKeep, type ChannelMethod, type MethodContext, type PruneOutcome } from './methods.js';
export { diScores, diBatchScore, gfbsScores, l1Scores, randomScores, solveSpd, DI_DEFAULTS, GFBS_DEFAULTS, type DiOptions, type GfbsOptions } from './scorers.js';
export { dcpScores, dcpPrune, greedySelect, trainHeads, jointFinetune, dcpHeadPoints, DCP_DEFAULTS, type DcpOptions, type DcpHead } from './dcp.js';
export { searchKeepRatios, inProcessEvaluator, uniformRatioForBudget, scoreConfig, type ChannelEvaluator, type SearchSettings, type SearchOutcome } from './search.js';
export { channelsBuilder, channelsContext, sharedEvaluatorAdapter, type ChannelsCandidate } from './evaluator.js';
export { recalibrateBatchNorm, type RecalibrationOptions } from './recalibrate.js';
export { loadChannelData, type ChannelData, type DataSizes } from './data.js';
export { getBaseline, baselineDir, type Baseline } from './baseline.js';
