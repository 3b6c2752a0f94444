/** Caffe-manifest import (OLMP / DNS / Caffe LeNets), test-set evaluation, and the OLMP released models' figures. */
export * from './caffe.js';
export * from './manifest.js';
export * from './evaluate.js';
export * from './figures.js';
