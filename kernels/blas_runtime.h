// OpenBLAS (Debian's DYNAMIC_ARCH build) picks its kernels from cpuid when the
// library loads. On CPUs it does not recognise (seen: Sapphire Rapids under a
// hypervisor) it falls back to "Prescott" SSE3 kernels, 2-6x slower. Programs
// call this first thing in main(): if that happened and the CPU has AVX-512 or
// AVX2, it re-executes the program with OPENBLAS_CORETYPE set (the only way to
// choose the core, since the choice is made before main runs). A user-set
// OPENBLAS_CORETYPE is always respected.
#pragma once

namespace ringscan {

void reexec_with_fast_blas_if_needed(char** argv);

// The kernel family OpenBLAS is using, e.g. "SkylakeX".
const char* blas_core_name();

// Threads of the CPU kernels (OpenMP) and of OpenBLAS from now on (--threads N);
// without a call, OMP_NUM_THREADS or every core. compute_threads(): the number in use.
void set_compute_threads(int n);
int compute_threads();

}  // namespace ringscan
