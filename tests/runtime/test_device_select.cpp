// --device: what each choice gives on this machine, whichever machine it is.
// A GPU-less machine (CI) checks the refusals and auto's reason; a GPU
// machine checks that auto and cuda take the GPU.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "runtime/device_select.h"
#include "util/error.h"

namespace ringscan {
namespace {

TEST(DeviceSelect, CpuIsAlwaysTheCpu) {
  const DeviceChoice c = choose_device("cpu", 0);
  EXPECT_EQ(c.backend, Backend::Cpu);
  EXPECT_EQ(c.label, "cpu");
  EXPECT_TRUE(c.why_cpu.empty());
}

TEST(DeviceSelect, UnknownDeviceIsRefusedByName) {
  try {
    choose_device("gpu", 0);
    FAIL() << "--device gpu was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "--device gpu is not one of auto, cpu, cuda");
  }
}

// auto takes a GPU exactly when cuda would; without one it says why, and
// cuda fails with that reason.
TEST(DeviceSelect, AutoAndCudaAgree) {
  const DeviceChoice a = choose_device("auto", 0);
  if (a.backend == Backend::Cuda) {
    EXPECT_TRUE(built_with_cuda());
    EXPECT_EQ(choose_device("cuda", 0).backend, Backend::Cuda);
    EXPECT_EQ(a.label.rfind("cuda:", 0), 0u) << a.label;
    return;
  }
  EXPECT_EQ(a.label, "cpu");
  ASSERT_FALSE(a.why_cpu.empty());
  if (!built_with_cuda()) {
    EXPECT_NE(a.why_cpu.find("built without CUDA"), std::string::npos) << a.why_cpu;
  }
  try {
    choose_device("cuda", 0);
    FAIL() << "--device cuda was accepted without a usable GPU";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "--device cuda: no usable GPU: " + a.why_cpu);
  }
}

}  // namespace
}  // namespace ringscan
