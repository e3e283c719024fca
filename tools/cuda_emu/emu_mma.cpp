// cuda_emu: mma.sync m16n8k16 bf16 and ldmatrix x4 from their PTX fragment
// layouts (see include/mma_emu.h).
#include "mma_emu.h"

#include <cstring>

#include "cuda_runtime.h"

namespace emu {
namespace {

float bf16_lo(uint32_t r) { uint32_t u = r << 16; float f; std::memcpy(&f, &u, 4); return f; }
float bf16_hi(uint32_t r) { uint32_t u = r & 0xffff0000u; float f; std::memcpy(&f, &u, 4); return f; }
uint16_t load_u16(uint64_t addr) { uint16_t v; std::memcpy(&v, reinterpret_cast<const void*>(addr), 2); return v; }

}  // namespace

void warp_gather(uint64_t v, uint64_t out[32], const char* what) {
  Fiber* f = g_cur;
  f->xval = v;
  warp_op(0xffffffffu);
  for (int l = 0; l < 32; ++l) {
    if (l == f->lane) {
      out[l] = v;
      continue;
    }
    const Fiber* s = warp_lane(l);
    warp_check_source(s, what);
    out[l] = s ? s->pub : 0;
  }
}

void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  uint64_t a01[32], a23[32], b01[32];
  warp_gather(a[0] | uint64_t{a[1]} << 32, a01, "mma.sync");
  warp_gather(a[2] | uint64_t{a[3]} << 32, a23, "mma.sync");
  warp_gather(b[0] | uint64_t{b[1]} << 32, b01, "mma.sync");
  // Rebuild A (16x16) and B (16x8): lane l = 4 * group + t holds
  //   a0: A[g][2t..2t+1]  a1: A[g+8][2t..]  a2: A[g][2t+8..]  a3: A[g+8][2t+8..]
  //   b0: B[2t..2t+1][g]  b1: B[2t+8..2t+9][g]
  // (the lower 16 bits hold the element with the lower column / row index).
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l >> 2, t = l & 3;
    const uint32_t r[4] = {uint32_t(a01[l]), uint32_t(a01[l] >> 32), uint32_t(a23[l]), uint32_t(a23[l] >> 32)};
    for (int i = 0; i < 4; ++i) {
      const int row = g + (i & 1) * 8, col = 2 * t + (i >> 1) * 8;
      A[row][col] = bf16_lo(r[i]);
      A[row][col + 1] = bf16_hi(r[i]);
    }
    const uint32_t rb[2] = {uint32_t(b01[l]), uint32_t(b01[l] >> 32)};
    for (int i = 0; i < 2; ++i) {
      B[2 * t + i * 8][g] = bf16_lo(rb[i]);
      B[2 * t + i * 8 + 1][g] = bf16_hi(rb[i]);
    }
  }
  // This lane's outputs: c0, c1 at row g, columns 2t, 2t+1; c2, c3 at row g+8.
  const int g = g_cur->lane >> 2, t = g_cur->lane & 3;
  float out[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + (i >> 1) * 8, col = 2 * t + (i & 1);
    double s = c[i];
    for (int k = 0; k < 16; ++k) s += double(A[row][k]) * double(B[k][col]);
    out[i] = static_cast<float>(s);
  }
  for (int i = 0; i < 4; ++i) d[i] = out[i];  // d may alias c
}

void ldmatrix_x4(uint32_t r[4], const void* row, bool trans) {
  const uint64_t mine = reinterpret_cast<uint64_t>(row);
  if (mine % 16 != 0)
    report("kernel %s: ldmatrix row address %p of lane %d is not 16-byte aligned", "(ldmatrix)", row, g_cur->lane);
  uint64_t addr[32];
  warp_gather(mine, addr, "ldmatrix");
  const int l = g_cur->lane;
  for (int j = 0; j < 4; ++j) {
    // Matrix j's row i starts at addr[8j + i]. Lane l gets, of M (or M^T with
    // trans), row l / 4, elements 2 (l % 4) and 2 (l % 4) + 1.
    uint16_t lo, hi;
    if (!trans) {
      lo = load_u16(addr[8 * j + l / 4] + 2 * (2 * (l % 4)));
      hi = load_u16(addr[8 * j + l / 4] + 2 * (2 * (l % 4) + 1));
    } else {
      lo = load_u16(addr[8 * j + 2 * (l % 4)] + 2 * (l / 4));
      hi = load_u16(addr[8 * j + 2 * (l % 4) + 1] + 2 * (l / 4));
    }
    r[j] = uint32_t(lo) | uint32_t(hi) << 16;
  }
}

}  // namespace emu
