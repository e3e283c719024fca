#include "blas_runtime.h"

#include <cblas.h>
#include <strings.h>
#include <unistd.h>

#include <omp.h>

#include <cstdio>
#include <cstdlib>

namespace ringscan {

const char* blas_core_name() { return openblas_get_corename(); }

void set_compute_threads(int n) {
  omp_set_num_threads(n);
  openblas_set_num_threads(n);  // its OpenMP build follows omp_set_num_threads too; the pthreads one needs this
}

int compute_threads() { return omp_get_max_threads(); }

void reexec_with_fast_blas_if_needed(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;  // the user's (or our earlier) choice
  const char* core = openblas_get_corename();
  if (!core || strcasecmp(core, "prescott") != 0) return;
  const char* better = nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) better = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) better = "Haswell";
  if (!better) return;
  setenv("OPENBLAS_CORETYPE", better, 1);
  execv("/proc/self/exe", argv);
  // execv failed: carry on with the slow kernels, but say so.
  std::fprintf(stderr, "ringscan: warning: OpenBLAS chose generic kernels and re-executing with OPENBLAS_CORETYPE=%s failed; "
               "set it yourself for full speed\n", better);
}

}  // namespace ringscan
