/** Vega-Lite → Vega → SVG, in Node, without a browser or canvas (vega's headless 'none' renderer). */
import * as vl from 'vega-lite';
import * as vega from 'vega';
import type { VlSpec } from './charts.js';

/** A vega logger that keeps warnings and errors in a list instead of printing them. */
function collectingLogger(into: string[]): vega.LoggerInterface {
  let level = vega.Warn;
  const logger = {
    level(l?: number) {
      if (l === undefined) return level;
      level = l;
      return logger;
    },
    error(...args: readonly unknown[]) {
      into.push(`error: ${args.map(String).join(' ')}`);
      return logger;
    },
    warn(...args: readonly unknown[]) {
      if (level >= vega.Warn) into.push(`warning: ${args.map(String).join(' ')}`);
      return logger;
    },
    info() {
      return logger;
    },
    debug() {
      return logger;
    },
  };
  return logger as unknown as vega.LoggerInterface;
}

/** Renders a Vega-Lite spec to an SVG string. Compiler and runtime warnings go to `warnings` (never to the console). */
export async function renderSvg(spec: VlSpec, warnings: string[] = []): Promise<string> {
  const logger = collectingLogger(warnings);
  const compiled = vl.compile(spec as unknown as vl.TopLevelSpec, { logger }).spec;
  // No loader access: every figure carries its data inline, so nothing is fetched.
  const loader = vega.loader({ mode: 'file' });
  loader.load = async (uri: string) => {
    throw new Error(`report figures carry their data inline; refusing to load ${uri}`);
  };
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', loader, logger });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
