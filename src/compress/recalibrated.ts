/**
 * Joint candidates of BatchNorm models, evaluated with their BatchNorm statistics re-estimated: removing channels
 * and weights shifts the statistics downstream, and a masked network judged on the baseline's moving averages loses
 * far more accuracy than it keeps after any finetuning (the channel-pruning search does the same, spec
 * channel-pruning.md). Each candidate's masks are built as the shared evaluators build them (jointMasks), the BN
 * moving statistics replaced by those of a few training-side batches (no weight changes), then the validation
 * images run through the tfjs forward. In this thread only; same interface as the evaluators' evaluate().
 */
import { maskedParams, sizeReport } from '../../models/params.js';
import type { Evaluation, EvaluationContext, Evaluator } from '../../evaluators/index.js';
import { evaluateAccuracy } from '../train/evaluate.js';
import { recalibrateBatchNorm, type RecalibrationOptions } from '../channels/recalibrate.js';
import { jointMasks, type JointCandidate } from './candidate.js';

export function recalibratedEvaluator(ctx: EvaluationContext, recalibration: RecalibrationOptions, batchSize: number): Pick<Evaluator, 'evaluate'> {
  const params = sizeReport(ctx.arch, ctx.masks).params;
  return {
    async evaluate(cands, opts = {}) {
      return cands.map((c): Evaluation => {
        const masks = jointMasks(ctx, c as JointCandidate);
        const p = recalibrateBatchNorm(ctx.arch, maskedParams(ctx.params, masks), recalibration);
        const { correct } = evaluateAccuracy(ctx.arch, p, null, ctx.data, batchSize);
        const size = sizeReport(ctx.arch, masks);
        const n = ctx.data.count;
        const feasible = opts.minCorrect === undefined || correct >= opts.minCorrect;
        return {
          accuracy: correct / n,
          correct,
          evaluated: n,
          count: n,
          nonZero: size.nonZero,
          compression: params / size.nonZero,
          macs: size.macs,
          feasible,
          violation: feasible ? 0 : (opts.minCorrect! - correct) / n,
          earlyExit: false,
          cacheHit: false,
        };
      });
    },
  };
}
