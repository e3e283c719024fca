// The batch jobs' subcommands (score, embed, summarize and any other job in
// jobs/): their options parsed into JobOptions, then the job run (jobs/batch_job.h).
#include <algorithm>
#include <boost/program_options.hpp>
#include <iostream>

#include "cli/command.h"
#include "jobs/batch_job.h"
#include "jobs/summarize_state.h"
#include "util/error.h"
#include "runtime/mpi_context.h"

namespace po = boost::program_options;

namespace ringscan::cli {

namespace {

po::options_description job_options_description(const JobSpec& spec, JobOptions& o) {
  po::options_description opts(spec.help_title);
  opts.add_options()("help,h", "this help")
      ("model", spec.want.generate ? po::value(&o.model_dir) : po::value(&o.model_dir)->required(),
       spec.want.generate ? "model folder (config.json, safetensors, tokenizer.json); with --state: default the state's"
                          : "model folder (config.json, safetensors, tokenizer.json)")
      ("input", spec.want.generate ? po::value(&o.inputs)->composing() : po::value(&o.inputs)->required()->composing(),
       "files, directories, @list.txt, or - for stdin (repeatable)")
      ("input-format", po::value(&o.input_format)->default_value("auto"), "auto (*.jsonl files are JSONL), text, or jsonl (files and stdin)")
      ("jsonl-id", po::value(&o.jsonl_id)->default_value("id"), "JSONL: the field naming a document (absent: FILE:LINE)")
      ("jsonl-text", po::value(&o.jsonl_text)->default_value("text"), "JSONL: the field holding a document's text")
      ("out", po::value(&o.out)->required(), "output HDF5 file")
      ("mode", po::value(&o.mode)->default_value("file"), "file: a document per file; codebase: a document per input directory")
      ("include", po::value(&o.include)->composing(), "glob of files to keep inside directories (repeatable)")
      ("exclude", po::value(&o.exclude)->composing(), "glob of files or folders to skip (repeatable)")
      ("no-gitignore", po::bool_switch(&o.no_gitignore), "do not honour .gitignore files")
      ("max-tokens", po::value(&o.max_tokens)->default_value(0), "truncate documents to this many tokens (0: no limit)")
      ("sp", po::value(&o.sp)->default_value(0), "ranks per sequence-parallel group for long documents (0: sized from length)")
      ("threads", po::value(&o.threads)->default_value(0), "CPU threads per rank (0: OMP_NUM_THREADS, else every core)")
      ("layout", po::value(&o.layout)->default_value("zigzag"), "sequence-parallel layout: zigzag or contiguous")
      ("memory-per-rank", po::value(&o.memory_gib)->default_value(0), "GiB a rank may use (0: this node's memory / ranks on it x 0.7; on GPUs: 90% of its GPU's free memory / ranks sharing it)")
      ("overwrite", po::bool_switch(&o.overwrite), "replace an existing output from a different model or options")
      ("repair", po::bool_switch(&o.repair), "drop damaged part files of an unfinished run and compute their documents again")
      ("quiet", po::bool_switch(&o.quiet), "no progress output")
      ("progress-interval", po::value(&o.progress_interval)->default_value(10), "seconds between progress lines when not on a terminal")
      ("device", po::value(&o.device)->default_value("auto"), "auto (GPUs when every rank has one, else the CPU), cpu or cuda")
      ("comm", po::value(&o.comm)->default_value("auto"), "sequence-parallel exchanges: mpi (through host memory; ranks may share a GPU), nccl (device buffers, one GPU per rank), auto (nccl when every rank has its own GPU, else mpi)");
  if (spec.want.logprobs && !spec.want.generate)
    opts.add_options()
        ("window", po::value(&o.window)->default_value(0), "score documents longer than this many tokens with a sliding window: each token sees at most this many (0: whole documents)")
        ("stride", po::value(&o.stride)->default_value(0), "tokens the window moves each step (default with --window: half of it); every token is scored once");
  if (spec.want.generate)
    opts.add_options()
        ("max-new-tokens", po::value(&o.max_new_tokens)->default_value(128), "tokens to generate per document at most")
        ("temperature", po::value(&o.sampling.temperature)->default_value(0.f), "sampling temperature (0: greedy)")
        ("top-k", po::value(&o.sampling.top_k)->default_value(0), "sample among the k most likely tokens (0: all)")
        ("top-p", po::value(&o.sampling.top_p)->default_value(1.f), "nucleus sampling: smallest set with this probability")
        ("seed", po::value(&o.sampling.seed)->default_value(0), "random seed (same seed, same summaries)")
        ("prompt-file", po::value(&o.prompt.prompt_file), "the user turn's text, with {document} (and {question}), inside the chat template (default: a summarizing instruction)")
        ("question", po::value(&o.prompt.question), "text for the prompt file's {question}")
        ("no-chat-template", po::bool_switch(&o.prompt.no_chat_template), "the prompt file's text is the whole prompt (no chat template)")
        ("system", po::value(&o.prompt.system), "system turn of the chat template")
        ("batch", po::value(&o.batch)->default_value(16), "documents decoded together per rank (with --state: files decoded together)")
        ("prefill-chunk", po::value(&o.prefill_chunk)->default_value(0), "prefill admitted prompts this many tokens per decode step, so decoding documents do not stall behind a long prompt (0: each prompt whole on admission)")
        ("no-prefill-overlap", po::bool_switch()->notifier([&o](bool off) { o.prefill_overlap = !off; }), "with --prefill-chunk: run each chunk between decode steps, not beside them on a second GPU stream")
        ("state", po::value(&o.state), "a saved prefill state (ringscan prefill --out) instead of --input: one summary per file of its codebase, each a question forking the state")
        ("prompt-template", po::value(&o.prompt_template)->default_value(o.prompt_template), "with --state: each file's prompt, {file} replaced by its path")
        ("gemm-inputs", po::value(&o.gemm_inputs)->default_value("bf16"), "with --state, GPU engine: bf16 (fast; K/V kept in bf16) or fp32 (the CPU engine's results to round-off)")
        ("ignore-eos", po::bool_switch(&o.ignore_eos), "always generate --max-new-tokens");
  return opts;
}

// Parsed on every rank, a bad option reported once (check_collectively); --help on rank 0.
int run_job_command(const JobSpec& spec, int argc, char** argv) {
  start_mpi(&argc, &argv);
  JobOptions o;
  const po::options_description opts = job_options_description(spec, o);
  po::variables_map vm;
  {
    auto world = comm::MpiCommunicator::create();
    check_collectively(*world, [&]() {
      po::store(po::parse_command_line(argc, argv, opts), vm);
      if (!vm.count("help")) po::notify(vm);
    });
    if (vm.count("help")) {
      if (world->rank() == 0) std::cout << opts << "\n";
      return 0;
    }
  }
  o.command_line = command_line(argc, argv);
  if (o.window > 0 && o.stride == 0) o.stride = std::max<int64_t>(1, o.window / 2);
  if (spec.want.generate) {
    auto world = comm::MpiCommunicator::create();
    check_collectively(*world, [&]() {
      if (!o.state.empty()) return;
      if (vm["prompt-template"].defaulted() == false)
        throw Error("--prompt-template applies with --state only (a per-file prompt against a saved state)");
      if (vm["gemm-inputs"].defaulted() == false)
        throw Error("--gemm-inputs applies with --state only (summarize of documents runs the GPU engine in bf16)");
      if (o.model_dir.empty()) throw Error("the option '--model' is required but missing");
      if (o.inputs.empty()) throw Error("the option '--input' is required but missing (or give --state DIR)");
    });
    if (!o.state.empty()) return run_summarize_state(o);
  }
  return run_batch_job(spec, o);
}

}  // namespace

void register_batch_job_commands() {
  for (const JobSpec& spec : batch_jobs())
    command_registry()[spec.name] =
        Command{spec.summary, [&spec](int argc, char** argv) { return run_job_command(spec, argc, argv); }};
}

}  // namespace ringscan::cli
