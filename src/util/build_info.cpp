#include "util/build_info.h"

namespace ringscan {

const char* ringscan_version() { return RINGSCAN_VERSION; }

const char* git_commit() {
  return
#include "git_commit.inc"
      ;
}

const char* build_options() {
  return
#include "build_options.inc"
      ;
}

std::string version_text() {
  return std::string("ringscan ") + ringscan_version() + "\ncommit " + git_commit() + "\nbuild: " + build_options() +
         "\n";
}

}  // namespace ringscan
