/** Caffe-manifest import (OLMP / DNS / Caffe LeNets), test-set evaluation, and the OLMP released models' figures. */
export * from '../../models/caffe/layout.js';
export * from '../../models/caffe/manifest.js';
export * from './evaluate.js';
export * from './figures.js';
