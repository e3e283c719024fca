// What `ringscan --version` prints: the version, the git commit the binary was built
// from (read at build time; "-dirty" with uncommitted changes) and the build options.
#pragma once
#include <string>

namespace ringscan {

const char* ringscan_version();  // "0.1.0"
const char* git_commit();        // "5397938a1b2c", "5397938a1b2c-dirty"
const char* build_options();     // build type, CPU level, compiler, CUDA, MPI, BLAS, HDF5
std::string version_text();      // the three, one per line

}  // namespace ringscan
