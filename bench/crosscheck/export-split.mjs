// Writes prunus's default train/validation permutation (Rng('split:0'), foundation/data/datasets.ts) as int32 to stdout,
// for caffe_lenet300.py's prunus-split mode. Needs a build (npx tsc).
import { Rng } from '../../dist/foundation/rng.js';
const perm = new Rng(`split:${process.argv[2] ?? 0}`).permutation(60000);
process.stdout.write(Buffer.from(new Int32Array(perm).buffer));
