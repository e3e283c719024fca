// Built-in model shapes for make-model: demos, tests and benchmarks.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace ringscan {

// "tiny" (tests), "demo" (scripts/demo.sh; vocab of the demo tokenizer),
// "nano-4b" (Nemotron 3 Nano 4B's shape, for benchmarks).
ModelConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();

// Parameter count of a config (every tensor expected_tensors() lists).
int64_t parameter_count(const ModelConfig& c);

}  // namespace ringscan
