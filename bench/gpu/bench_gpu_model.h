// What the GPU benchmarks share before they measure: the GPU they run on, and
// the model (a checkpoint, or a preset's random weights built in memory, so
// that the nano-4b shape needs nothing on disk).
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "model/model.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"

namespace ringscan::bench {

// The name of GPU 0; with no GPU visible, `bench` says so and the program exits 2.
inline std::string gpu_name_or_exit(const char* bench) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "%s: no GPU: nothing to measure\n", bench);
    std::exit(2);
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  return prop.name;
}

// The checkpoint in `dir`, or (dir empty) `preset`'s shape with random weights.
inline std::unique_ptr<Model> checkpoint_or_preset(const std::string& dir, const std::string& preset) {
  if (!dir.empty()) return Model::load(dir, true);
  const ModelConfig c = preset_config(preset);
  return Model::from_checkpoint(c, random_checkpoint_in_memory(c, RandomCheckpointOptions{}));
}

}  // namespace ringscan::bench
