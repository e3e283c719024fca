// Warp-level tensor-core building blocks (sm_80+): the bf16 m16n8k16 MMA with
// fp32 accumulation and the ldmatrix loads that feed it. Kernels use only these
// wrappers, never raw PTX, so that tools/cuda_emu can run them on the CPU: it
// emulates each instruction from the PTX fragment layouts (tools/cuda_emu/
// include/mma_emu.h), so a fragment built from the wrong rows or columns fails
// the tests there as it would on a GPU.
//
// Fragment layouts (lane = 4 * g + t, g = lane / 4, t = lane % 4; a 32-bit
// register holds two bf16, the lower-index element in the low half):
//   A 16x16 (row major):  a[0] = A[g][2t, 2t+1]    a[1] = A[g+8][2t, 2t+1]
//                         a[2] = A[g][2t+8, 2t+9]  a[3] = A[g+8][2t+8, 2t+9]
//   B 16x8 (K x N, "col"): b[0] = B[2t, 2t+1][g]   b[1] = B[2t+8, 2t+9][g]
//   C/D 16x8 fp32:         c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]
// ldmatrix x4: lanes 8j..8j+7 give the 16-byte row addresses of 8x8 matrix j;
// r[j] = row g of matrix j, elements 2t and 2t+1 (of the transpose with trans).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#ifdef RINGSCAN_EMU
#include "mma_emu.h"
#endif

namespace ringscan::kernels::cuda::mma {

// d += a * b on the tensor cores (bf16 inputs, fp32 accumulation).
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#ifdef RINGSCAN_EMU
  ::emu::mma_m16n8k16_bf16(d, a, b, d);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// Four 8x8 bf16 matrices from shared memory (row: this lane's row address).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#ifdef RINGSCAN_EMU
  ::emu::ldmatrix_x4(r, row, false);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(row))));
#endif
}

// The same, each matrix transposed (B fragments from a row-major K x N tile).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
#ifdef RINGSCAN_EMU
  ::emu::ldmatrix_x4(r, row, true);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(static_cast<uint32_t>(__cvta_generic_to_shared(row))));
#endif
}

// Two floats rounded to bf16 (nearest even) in one register, lo in the low half.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16;
}

}  // namespace ringscan::kernels::cuda::mma
