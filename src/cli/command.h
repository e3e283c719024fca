// Subcommands of the `ringscan` binary register themselves here: a new job or
// tool is one .cpp file under src/cli/ (compiled into the executable) with
//   RINGSCAN_COMMAND(name, "one-line summary", function)
// where function is `int f(int argc, char** argv)` receiving the arguments
// after the subcommand name (argv[0] is "ringscan <name>"). It returns the exit
// status; it may throw ringscan::Error for a clear one-sentence failure.
#pragma once
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

struct CommandRegistrar {
  CommandRegistrar(const std::string& name, const std::string& summary, CommandFn fn) {
    command_registry()[name] = Command{summary, std::move(fn)};
  }
};

}  // namespace ringscan::cli

#define RINGSCAN_COMMAND_CAT2(a, b) a##b
#define RINGSCAN_COMMAND_CAT(a, b) RINGSCAN_COMMAND_CAT2(a, b)
#define RINGSCAN_COMMAND(name, summary, fn)                                              \
  static ::ringscan::cli::CommandRegistrar RINGSCAN_COMMAND_CAT(ringscan_cmd_, __LINE__)( \
      name, summary, fn)
