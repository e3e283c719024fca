// ringscan prefill / ask: save a document's state once, then answer many
// questions against it (jobs/prefill_state.h, jobs/ask.h, docs/state-files.md).
#include <boost/program_options.hpp>
#include <iostream>

#include "cli/command.h"
#include "comm/mpi_communicator.h"
#include "jobs/ask.h"
#include "jobs/prefill_state.h"
#include "runtime/mpi_context.h"

namespace po = boost::program_options;

namespace ringscan::cli {

namespace {

// Parsed on every rank, a bad option reported once; --help on rank 0. False: --help was printed.
bool parse_everywhere(comm::Communicator& world, int argc, char** argv, const po::options_description& opts) {
  po::variables_map vm;
  check_collectively(world, [&]() {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (!vm.count("help")) po::notify(vm);
  });
  if (vm.count("help")) {
    if (world.rank() == 0) std::cout << opts << "\n";
    return false;
  }
  return true;
}

int run_prefill(int argc, char** argv) {
  start_mpi(&argc, &argv);
  auto world = comm::MpiCommunicator::create();
  PrefillStateOptions o;
  po::options_description opts("ringscan prefill: run one document (a codebase) sequence-parallel and save its state");
  opts.add_options()("help,h", "this help")
      ("model", po::value(&o.model_dir)->required(), "model folder")
      ("input", po::value(&o.inputs)->multitoken()->required(), "the document: a directory (--mode codebase) or a file")
      ("out", po::value(&o.out)->required(), "the state directory to write")
      ("mode", po::value(&o.mode)->default_value("codebase"), "codebase (a directory's files as one document) or file")
      ("include", po::value(&o.include)->multitoken(), "only files matching these globs")
      ("exclude", po::value(&o.exclude)->multitoken(), "skip files matching these globs")
      ("no-gitignore", po::bool_switch(&o.no_gitignore), "do not apply .gitignore files")
      ("max-tokens", po::value(&o.max_tokens)->default_value(0), "cut the document to this many tokens (0: no limit)")
      ("layout", po::value(&o.layout)->default_value("zigzag"), "segment layout: zigzag or contiguous")
      ("kv-dtype", po::value(&o.kv_dtype)->default_value("fp32"), "how the state stores the attention K/V rows: fp32 or bf16 (half the bytes, on disk and in memory); ask maps either as it is")
      ("instruction", po::value(&o.instruction)->default_value(o.instruction), "the user turn's text before the document")
      ("system", po::value(&o.system), "system turn of the chat template")
      ("no-chat-template", po::bool_switch(&o.no_chat_template), "BOS + document; questions as \"Question: ... Answer:\"")
      ("threads", po::value(&o.threads)->default_value(0), "CPU threads per rank (0: OMP_NUM_THREADS, else every core)")
      ("device", po::value(&o.device)->default_value("auto"), "auto, cpu or cuda (either engine saves the same format)")
      ("comm", po::value(&o.comm)->default_value("auto"), "how GPU ranks exchange: auto, mpi (through the host; ranks may share a GPU) or nccl (one GPU per rank)")
      ("gemm-inputs", po::value(&o.gemm_inputs)->default_value("bf16"), "GPU engine: bf16 (fast; K/V kept in bf16) or fp32 (the CPU engine's results to round-off)")
      ("overwrite", po::bool_switch(&o.overwrite), "replace an existing state directory")
      ("quiet", po::bool_switch(&o.quiet), "no log lines");
  if (!parse_everywhere(*world, argc, argv, opts)) return 0;
  o.command_line = command_line(argc, argv);
  return run_prefill_state(o, *world);
}

int run_ask_command(int argc, char** argv) {
  start_mpi(&argc, &argv);
  auto world = comm::MpiCommunicator::create();
  AskOptions o;
  po::options_description opts("ringscan ask: answer questions against a state saved by ringscan prefill");
  opts.add_options()("help,h", "this help")
      ("state", po::value(&o.state)->required(), "state directory (ringscan prefill --out)")
      ("questions", po::value(&o.questions)->required(), "JSONL: {\"question\": \"...\", \"id\": \"...\"} per line")
      ("out", po::value(&o.out)->required(), "answers HDF5 file")
      ("model", po::value(&o.model_dir), "model folder (default: the one the state was prefilled with)")
      ("max-new-tokens", po::value(&o.max_new_tokens)->default_value(128), "tokens generated per answer at most")
      ("batch", po::value(&o.batch)->default_value(64), "questions decoded together")
      ("temperature", po::value(&o.sampling.temperature)->default_value(0.f), "0: greedy")
      ("top-k", po::value(&o.sampling.top_k)->default_value(0), "0: no limit")
      ("top-p", po::value(&o.sampling.top_p)->default_value(1.f), "1: no limit")
      ("seed", po::value(&o.sampling.seed)->default_value(0), "sampling seed (per question: its row)")
      ("ignore-eos", po::bool_switch(&o.ignore_eos), "always generate --max-new-tokens")
      ("threads", po::value(&o.threads)->default_value(0), "CPU threads per rank (0: OMP_NUM_THREADS, else every core)")
      ("device", po::value(&o.device)->default_value("auto"), "auto (GPUs when every rank has one, else the CPU), cpu or cuda (either engine answers from any state)")
      ("comm", po::value(&o.comm)->default_value("auto"), "how GPU ranks exchange: auto, mpi (through the host; ranks may share a GPU) or nccl (one GPU per rank)")
      ("gemm-inputs", po::value(&o.gemm_inputs)->default_value("bf16"), "GPU engine: bf16 (fast; K/V kept in bf16) or fp32 (the CPU engine's answers to round-off)")
      ("overwrite", po::bool_switch(&o.overwrite), "replace the answers of another run (other state, questions or options) at --out; a rerun of the same command resumes without it")
      ("repair", po::bool_switch(&o.repair), "drop damaged part files of an interrupted run (their questions are asked again)")
      ("progress-interval", po::value(&o.progress_interval)->default_value(10), "seconds between progress lines when not on a terminal")
      ("quiet", po::bool_switch(&o.quiet), "no log lines");
  if (!parse_everywhere(*world, argc, argv, opts)) return 0;
  o.command_line = command_line(argc, argv);
  return run_ask(o, *world);
}

}  // namespace

RINGSCAN_COMMAND("prefill", "run one document (a codebase) once and save its state for ask (mpirun: sequence parallel)",
                 run_prefill);
RINGSCAN_COMMAND("ask", "answer questions (JSONL) against a saved prefill state, batched; answers to HDF5",
                 run_ask_command);

}  // namespace ringscan::cli
