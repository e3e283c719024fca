// ringscan make-model: deterministic random checkpoints for demos, tests and benchmarks.
#include <boost/program_options.hpp>
#include <iostream>

#include "cli/command.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "tokenizer/demo_tokenizer.h"
#include "util/error.h"
#include "util/json_util.h"

namespace po = boost::program_options;

namespace ringscan::cli {
namespace {

int run_make_model(int argc, char** argv) {
  std::string preset, config_file, out, dtype = "bf16";
  uint64_t seed = 0;
  std::string presets;
  for (const auto& n : preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  po::options_description opts("ringscan make-model: write a deterministic random checkpoint");
  opts.add_options()("help,h", "this help")
      ("preset", po::value(&preset), ("built-in shape: " + presets).c_str())
      ("config", po::value(&config_file), "a config.json (model_type nemotron_h) to build instead of a preset")
      ("out", po::value(&out)->required(), "output folder")
      ("seed", po::value(&seed)->default_value(0), "random seed (same seed, same bytes)")
      ("dtype", po::value(&dtype)->default_value("bf16"), "weight dtype: bf16, f16 or f32");
  po::variables_map vm;
  if (!parse_options(argc, argv, opts, vm)) return 0;
  if (vm.count("preset") == vm.count("config")) throw Error("give exactly one of --preset and --config");
  ModelConfig c = vm.count("preset") ? preset_config(preset) : parse_model_config(read_json_file(config_file), config_file);
  RandomCheckpointOptions o;
  o.seed = seed;
  if (dtype == "bf16") o.dtype = DType::BF16;
  else if (dtype == "f16") o.dtype = DType::F16;
  else if (dtype == "f32") o.dtype = DType::F32;
  else throw Error("--dtype must be bf16, f16 or f32, got \"" + dtype + "\"");
  write_random_checkpoint(c, out, o);
  // The demo preset is a complete checkpoint: its vocabulary is the demo tokenizer's.
  if (vm.count("preset") && preset == "demo") {
    write_text_file(out + "/tokenizer.json", std::string(demo_tokenizer_json()));
    write_text_file(out + "/tokenizer_config.json", std::string(demo_tokenizer_config_json()));
  }
  std::cerr << "ringscan: wrote " << (vm.count("preset") ? preset : config_file) << " model ("
            << parameter_count(c) << " parameters, " << dtype << ") to " << out << "\n";
  return 0;
}

}  // namespace

RINGSCAN_COMMAND("make-model", "write a deterministic random checkpoint (tiny, demo, nano-4b, or a config)", run_make_model);

}  // namespace ringscan::cli
