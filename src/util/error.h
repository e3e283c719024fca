// ringscan reports every user-facing failure as one clear sentence: which
// file, tensor or option, and what was expected. Code throws ringscan::Error;
// the command-line entry point prints it and exits non-zero (on every rank).
#pragma once
#include <stdexcept>
#include <string>

namespace ringscan {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace ringscan
