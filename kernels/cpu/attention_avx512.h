// The AVX-512 path of cpu::attention_block_kv (kernels/cpu/attention.cpp picks
// it at run time; internal to the cpu kernels). One task = the packed query
// rows of one KV head's group (query row i of the task, head hh of the group is
// packed row r = i * G + hh) against that KV head's visible keys, as the
// portable path's tasks. Here the packed rows lie in the SIMD lanes (32 rows
// per block, two 16-lane vectors): a score tile is keys x 32 rows, so the
// online softmax's max, sums and rescaling are lane-wise (no horizontal
// reductions), and both products are register-blocked broadcast-FMA loops over
// tiles that stay in L1, with no packing of K or V.
//
// Numerics: fp32 throughout, each lane's arithmetic independent of the other
// lanes (so of how rows are grouped into tasks, i.e. of the thread count); a
// score is the dot product of the scaled query with the key, summed over the
// head dim in order; weights are vec_exp.h's exp; masked keys get weight 0
// exactly. bf16 K/V are widened exactly, so a bf16 block gives the bits of its
// widened fp32 copy, as on the portable path.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ringscan::kernels::cpu::avx512 {

// Whether this CPU and OS run AVX-512F code (checked once).
bool available();

// Packed rows per row block (the lanes of two vectors) and keys per score tile
// (a tile is kKeyBlock x kRowBlock floats: 16 KiB, in L1 with the block's
// queries and accumulators).
inline constexpr int64_t kRowBlock = 32;
inline constexpr int64_t kKeyBlock = 128;
// Packed rows per task at most (attention.cpp splits the query rows into
// tasks): each key tile is loaded once per task and used by all its row blocks.
// 1 024 rather than the portable kernel's 512 (bench_kernels, one thread,
// alternated runs): ask at 256 queries x 65 536 keys 109 -> 103 ms, x 16 384
// 26 -> 25 ms; nano-4b's heads (40/8 x 128) 512 x 4096 keys 224-229 -> 214-217.
inline constexpr int64_t kMaxPackedRows = 1024;

struct RowsTask {
  int64_t head_dim, group, q_heads;  // D, G (query heads per KV head), H
  int64_t rows;                      // query rows of the task (each gives G packed rows)
  const float* q;                    // the task's first query row, at head g * G
  int64_t ld_q;
  const int64_t* visible;  // keys visible to each query row: [0, visible[i]), non-decreasing, < 2^31
  bool bf16;               // K/V as bf16 (uint16_t) instead of fp32
  const void* k;           // key 0 of KV head g (ld_k, ld_v in elements)
  int64_t ld_k;
  const void* v;
  int64_t ld_v;
  float scale;
  float *acc, *m, *l;  // the state of the task's first query row, at head g * G
};

// Scratch of one thread for tasks of up to max_rows query rows: floats and int32s.
size_t scratch_floats(int64_t max_rows, int64_t group, int64_t head_dim);
size_t scratch_ints(int64_t max_rows, int64_t group);

// Folds the task's keys [0, visible[rows - 1]) into its rows' state. Only
// call when available().
void attention_rows(const RowsTask& t, float* scratch_f, int32_t* scratch_i);

}  // namespace ringscan::kernels::cpu::avx512
