#include <gtest/gtest.h>

#include "kernels/blas_runtime.h"

int main(int argc, char** argv) {
  ringscan::reexec_with_fast_blas_if_needed(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
