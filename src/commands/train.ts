export const summary = 'prunus train: train a reference model (not built yet)';
export const usage = '';
export async function run(_argv: string[]): Promise<number> {
  throw new Error('not built yet');
}
