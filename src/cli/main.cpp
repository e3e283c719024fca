// `ringscan <command> [options]`: dispatches to the registered subcommands.
#include <boost/program_options/errors.hpp>
#include <cstring>
#include <iostream>

#include "cli/command.h"
#include "kernels/blas_runtime.h"
#include "runtime/mpi_context.h"
#include "util/build_info.h"
#include "util/error.h"

namespace ringscan::cli {
std::map<std::string, Command>& command_registry() {
  static std::map<std::string, Command> registry;
  return registry;
}

bool parse_options(int argc, char** argv, const boost::program_options::options_description& opts,
                   boost::program_options::variables_map& vm,
                   const boost::program_options::positional_options_description* positional) {
  namespace po = boost::program_options;
  po::command_line_parser parser(argc, argv);
  parser.options(opts);
  if (positional) parser.positional(*positional);
  po::store(parser.run(), vm);
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

std::string command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    if (i) s += ' ';
    s += argv[i];
  }
  return s;
}
}  // namespace ringscan::cli

namespace {
void usage(std::ostream& os) {
  os << "usage: ringscan <command> [options]   (ringscan <command> --help for its options; ringscan --version)\n\ncommands:\n";
  for (const auto& [name, cmd] : ringscan::cli::command_registry())
    os << "  " << name << std::string(name.size() < 12 ? 12 - name.size() : 1, ' ') << cmd.summary << "\n";
}
}  // namespace

int main(int argc, char** argv) {
  ringscan::reexec_with_fast_blas_if_needed(argv);
  ringscan::cli::register_batch_job_commands();
  auto& registry = ringscan::cli::command_registry();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::cout << ringscan::version_text();
    return 0;
  }
  std::string name = argv[1];
  auto it = registry.find(name);
  if (it == registry.end()) {
    std::cerr << "ringscan: error: unknown command \"" << name << "\"\n";
    usage(std::cerr);
    return 2;
  }
  std::string prog = "ringscan " + name;
  argv[1] = prog.data();
  int status = 1;
  try {
    status = it->second.run(argc - 1, argv + 1);
    ringscan::stop_mpi();
    return status;
  } catch (const ringscan::CollectiveError& e) {
    std::cerr << "ringscan: error: " << e.what() << "\n";
  } catch (const ringscan::ReportedElsewhere&) {
  } catch (const ringscan::Error& e) {
    // One rank failed on its own: stop the others rather than leave them waiting.
    if (ringscan::mpi_world_size() > 1) ringscan::comm::abort_all(e.what());
    std::cerr << "ringscan: error: " << e.what() << "\n";
  } catch (const boost::program_options::error& e) {
    std::cerr << "ringscan " << name << ": error: " << e.what() << " (see ringscan " << name << " --help)\n";
  } catch (const std::bad_alloc&) {
    std::cerr << "ringscan: error: out of memory (see `ringscan info` for the memory a run needs)\n";
  } catch (const std::exception& e) {
    if (ringscan::mpi_world_size() > 1) ringscan::comm::abort_all(std::string("internal error: ") + e.what());
    std::cerr << "ringscan: error: internal error: " << e.what() << "\n";
  }
  ringscan::stop_mpi();
  return 1;
}
