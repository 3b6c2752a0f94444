/**
 * Kernels the wasm backend lacks. Conv2DBackpropFilter is needed to train conv nets on wasm.
 * (Placeholder: registered by the foundation work.)
 */
export function registerWasmKernels(): void {}
