/** Published LeNet figures (spec olmp.md §6) that `prunus reproduce` prints beside our measurements. */
export interface PublishedRow {
  method: string;
  compression: number;
  testError: number;
  source: string;
}

export const PUBLISHED: Record<string, PublishedRow[]> = {
  'lenet-300-100': [
    { method: 'Han et al. 2015', compression: 12, testError: 0.0159, source: 'paper' },
    { method: 'DNS', compression: 56, testError: 0.0199, source: 'paper' },
    { method: 'OLMP', compression: 113.5, testError: 0.0218, source: 'paper (released model ✔)' },
  ],
  'lenet-5': [
    { method: 'Han et al. 2015', compression: 12, testError: 0.0077, source: 'paper' },
    { method: 'DNS', compression: 108, testError: 0.0091, source: 'paper' },
    { method: 'OLMP', compression: 297.7, testError: 0.0091, source: 'paper (released model ✔)' },
  ],
};
