// A sequence's model state after a sequence-parallel prefill, saved to disk
// and loaded again, possibly on another number of ranks (docs/state-files.md).
//
// A state is a directory:
//   manifest.json        what it is (format, model identity, layout, segments,
//                        the caller's `about`), and per data file its size and SHA-256
//   ids.bin              the prefix's token ids, int32 little-endian
//   driver.bin           per Mamba layer conv history then SSM state, then the
//                        last position's final hidden row (fp32): the driver's part
//   kv-rank-NNNN.bin     per attention layer K rows then V rows of the segments that
//                        rank held ([rows, kv_heads*head_dim] each, fp32 or bf16: kv_dtype)
// Saved crash-safely: every rank writes into `<dir>.partial/`, rank 0 writes the
// manifest last and renames the directory into place; a crash leaves no `<dir>`
// (or the previous one), never a half-written one.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "kernels/weight_view.h"
#include "model/config.h"
#include "runtime/layout.h"
#include "runtime/prefix_decode.h"
#include "runtime/sequence_parallel.h"
#include "util/json_util.h"

namespace ringscan {

// 2 added kv_dtype (bf16 K/V); version 1 states (fp32 K/V) still load.
inline constexpr int kStateFormatVersion = 2;

// Collective over `group` (the ranks of the prefill, which ran with `layout`).
// `st` is this rank's take_decode_state(); `ids` the prefix's ids (read on rank 0);
// `about` free JSON the job adds to the manifest (model identity, files, prompt).
// `kv_dtype` F32 or BF16: how the K/V rows are stored (BF16 rounds to nearest even,
// half the bytes). An existing `dir` is an Error unless `overwrite`.
void save_state(comm::Communicator& group, const std::string& dir, const SequenceLayout& layout,
                const ModelConfig& c, const SequenceParallelDecodeState& st, const std::vector<int32_t>& ids,
                const Json& about, bool overwrite, DType kv_dtype = DType::F32);

// The SHA-256 that manifest.json's ids_file records for a prefix of these ids
// (ids.bin: int32 little-endian): what tells whether a state holds this prefix.
std::string state_ids_sha256(const std::vector<int32_t>& ids);

// The manifest's kv_dtype as a DType ("float32" when a version-1 state has none);
// Error on another value.
DType state_kv_dtype(const Json& manifest);

// manifest.json of a state directory, checked for format and version (Error otherwise).
Json read_state_manifest(const std::string& dir);

struct LoadedState {
  Json manifest;
  SequenceLayout layout;            // on this group's ranks
  int saved_ranks = 0;              // the ranks that saved it
  // This rank's part: the driver's Mamba states and last hidden row; the
  // attention layers' kv_rows, but their K/V are in prefix_kv, not st.
  SequenceParallelDecodeState st;
  // This rank's prefix K/V rows (re-sharded when saved_ranks != group size), in
  // the file's dtype, used in place: pieces of the read-only mappings of the
  // shard files that hold them (its own file's when loaded as saved; ranges of
  // one or more files when re-sharded; several ranks may map one file).
  PrefixKV prefix_kv;
  // prefix_kv points into the mapped shard files (no private copy). The loader
  // always maps (rows are always aligned for their type: see load_state); a
  // loader that has to copy says false.
  bool kv_mapped = false;
  std::string kv_dtype;             // the file's: "float32" or "bfloat16"
  std::vector<int32_t> ids;         // the prefix's ids, on every rank
  bool resharded() const { return saved_ranks != layout.ranks; }
};

// Collective over `group`. Checks every data file's size and SHA-256 (each by one
// rank), and that the state fits `c` (layer pattern and shapes); the KV rows of
// each new segment are mapped from whichever saved shards hold them.
LoadedState load_state(comm::Communicator& group, const std::string& dir, const ModelConfig& c);

// Bytes of a state's data files, per saving rank (rank 0..P-1) plus the driver file:
// what `info --state` prints.
struct StateSizes {
  std::vector<uint64_t> kv_per_rank;
  uint64_t driver = 0, ids = 0;
};
StateSizes state_sizes(const Json& manifest);

}  // namespace ringscan
