/** WebGPU through Dawn's Node bindings (npm `webgpu`). Filled in by the GPU-backends work; absent for now. */
export async function initWebgpu(_opts: { requireHardware: boolean }): Promise<{
  name: string;
  detail: string;
  adapter?: { description: string; vendor?: string; architecture?: string; isFallbackAdapter: boolean };
}> {
  throw new Error('webgpu backend not built into this version');
}
