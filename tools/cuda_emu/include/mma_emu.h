// cuda_emu: the warp-collective matrix instructions that kernels/cuda/mma.cuh
// wraps (mma.sync m16n8k16 bf16 and ldmatrix), emulated from the register
// fragment layouts of the PTX ISA ("Matrix Fragments for mma.m16n8k16 with
// floating point type", "ldmatrix"). Every lane's registers are gathered, the
// whole matrices are rebuilt exactly as the layout places them, and each lane
// gets back the elements the layout assigns to it. So a kernel that builds a
// fragment from the wrong rows or columns computes a wrong product here, as it
// would on the GPU.
#pragma once
#include <cstdint>

namespace emu {

// One full-warp operation in which every lane offers `v`; out[l] = lane l's
// offer. All 32 lanes must take part (the matrix instructions are .aligned).
void warp_gather(uint64_t v, uint64_t out[32], const char* what);

// d = a * b + c for the 16x8x16 tile: a (16x16, row) in 4 registers of 2
// bf16 each, b (16x8, col) in 2, c and d (16x8 fp32) in 4 floats per lane.
// Products are exact; the sum is taken in double and rounded once (the GPU
// accumulates in fp32: at most a few ulp apart).
void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]);

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lanes 8j..8j+7 give the
// row addresses (16 bytes each, 16-byte aligned) of 8x8 matrix j; r[j] gets
// that matrix's elements of this lane (transposed first with trans).
void ldmatrix_x4(uint32_t r[4], const void* row, bool trans);

}  // namespace emu
