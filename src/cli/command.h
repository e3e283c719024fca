// Subcommands of the `ringscan` binary register themselves here: a new tool is
// one .cpp file under src/cli/ (compiled into the executable) with
//   RINGSCAN_COMMAND(name, "one-line summary", function)
// where function is `int f(int argc, char** argv)` receiving the arguments
// after the subcommand name (argv[0] is "ringscan <name>"). It returns the exit
// status; it may throw ringscan::Error for a clear one-sentence failure.
// Batch jobs are registered in jobs/ (jobs/job_spec.h) and become subcommands
// through register_batch_job_commands().
#pragma once
#include <boost/program_options.hpp>
#include <functional>
#include <map>
#include <string>

namespace ringscan::cli {

using CommandFn = std::function<int(int, char**)>;

struct Command {
  std::string summary;
  CommandFn run;
};

std::map<std::string, Command>& command_registry();

// Adds a subcommand for every batch job of jobs/ (cli/cmd_batch_jobs.cpp). main() calls
// it first: the jobs register themselves during static initialisation, in no set order.
void register_batch_job_commands();

struct CommandRegistrar {
  CommandRegistrar(const std::string& name, const std::string& summary, CommandFn fn) {
    command_registry()[name] = Command{summary, std::move(fn)};
  }
};

// Parses a command's options (and positionals, if given) into vm. Returns false
// when --help was asked for: the help has been printed and the command returns 0.
// Otherwise checks required options (po::notify).
bool parse_options(int argc, char** argv, const boost::program_options::options_description& opts,
                   boost::program_options::variables_map& vm,
                   const boost::program_options::positional_options_description* positional = nullptr);

// The command as typed ("ringscan <name>" and its arguments, space-separated), for the
// run records of the jobs and of prefill / ask.
std::string command_line(int argc, char** argv);

}  // namespace ringscan::cli

#define RINGSCAN_COMMAND_CAT2(a, b) a##b
#define RINGSCAN_COMMAND_CAT(a, b) RINGSCAN_COMMAND_CAT2(a, b)
#define RINGSCAN_COMMAND(name, summary, fn)                                              \
  static ::ringscan::cli::CommandRegistrar RINGSCAN_COMMAND_CAT(ringscan_cmd_, __LINE__)( \
      name, summary, fn)
