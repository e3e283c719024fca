// Saving and loading a prefill's state (runtime/saved_state.h, docs/state-files.md).
#include "runtime/saved_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <filesystem>
#include <fstream>

#include "model/safetensors.h"
#include "runtime/mpi_context.h"
#include "util/error.h"
#include "util/sha256.h"

namespace ringscan {

namespace fs = std::filesystem;

namespace {

const char* kFormat = "ringscan-state";

std::string kv_file_name(int rank) {
  char b[32];
  std::snprintf(b, sizeof b, "kv-rank-%04d.bin", rank);
  return b;
}

// Writes `bytes` to `path` and flushes it to the disk before returning, so that
// the rename that publishes the state never points at unwritten data.
void write_durably(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Error("cannot create " + path + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      throw Error("cannot write " + path + ": " + std::strerror(e));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) throw Error("cannot flush " + path + ": " + std::strerror(errno));
}

void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) ::fsync(fd), ::close(fd);
}

template <class T>
void append(std::string& out, const std::vector<T>& v) {
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::vector<int> attention_layers(const ModelConfig& c) {
  std::vector<int> out;
  for (size_t i = 0; i < c.layers.size(); ++i)
    if (c.layers[i] == LayerKind::Attention) out.push_back(static_cast<int>(i));
  return out;
}

const char* kv_dtype_name(DType d) { return d == DType::BF16 ? "bfloat16" : "float32"; }

// K or V rows as stored: fp32 as they are, bf16 rounded to nearest even.
void append_kv(std::string& out, const std::vector<float>& v, DType d) {
  if (d == DType::F32) return append(out, v);
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_bf16(v[i]);
  append(out, h);
}

Json file_entry(const std::string& name, const std::string& bytes) {
  return Json{{"file", name}, {"bytes", bytes.size()}, {"sha256", sha256_hex(bytes)}};
}

std::string read_whole(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open " + path + " (a file of the saved state)");
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Checks a data file against its manifest entry: size first (cheap), then SHA-256.
std::string read_checked(const std::string& dir, const Json& entry) {
  const std::string path = (fs::path(dir) / entry.at("file").get<std::string>()).string();
  std::string bytes = read_whole(path);
  if (bytes.size() != entry.at("bytes").get<uint64_t>())
    throw Error(path + " has " + std::to_string(bytes.size()) + " bytes but manifest.json says " +
                std::to_string(entry.at("bytes").get<uint64_t>()) + ": the state is damaged, run prefill again");
  if (sha256_hex(bytes) != entry.at("sha256").get<std::string>())
    throw Error(path + ": its SHA-256 differs from manifest.json's: the state is damaged, run prefill again");
  return bytes;
}

// A shard file mapped read-only, checked like read_checked over the mapping (no copy).
std::shared_ptr<const MappedFile> map_checked(const std::string& dir, const Json& entry) {
  const std::string path = (fs::path(dir) / entry.at("file").get<std::string>()).string();
  if (!fs::is_regular_file(path)) throw Error("cannot open " + path + " (a file of the saved state)");
  auto f = std::make_shared<const MappedFile>(path);
  if (f->size() != entry.at("bytes").get<uint64_t>())
    throw Error(path + " has " + std::to_string(f->size()) + " bytes but manifest.json says " +
                std::to_string(entry.at("bytes").get<uint64_t>()) + ": the state is damaged, run prefill again");
  return f;
}

void check_sha256(const MappedFile& f, const Json& entry) {
  const std::string_view bytes(reinterpret_cast<const char*>(f.data()), f.size());
  if (sha256_hex(bytes) != entry.at("sha256").get<std::string>())
    throw Error(f.path() + ": its SHA-256 differs from manifest.json's: the state is damaged, run prefill again");
}

}  // namespace

std::string state_ids_sha256(const std::vector<int32_t>& ids) {
  std::string bytes;
  append(bytes, ids);
  return sha256_hex(bytes);
}

void save_state(comm::Communicator& group, const std::string& dir, const SequenceLayout& layout,
                const ModelConfig& c, const SequenceParallelDecodeState& st, const std::vector<int32_t>& ids,
                const Json& about, bool overwrite, DType kv_dtype) {
  if (kv_dtype != DType::F32 && kv_dtype != DType::BF16)
    throw Error(std::string("save_state: K/V are stored as F32 or BF16, not ") + dtype_name(kv_dtype));
  const int me = group.rank(), P = group.size();
  const std::string partial = dir + ".partial";
  check_collectively(group, [&]() {
    if (me != 0) return;
    if (fs::exists(dir) && !overwrite) throw Error(dir + " already exists: give --overwrite to replace it");
    if (fs::exists(dir) && !fs::exists(fs::path(dir) / "manifest.json"))
      throw Error(dir + " exists and is not a ringscan state (no manifest.json); not replacing it");
    fs::remove_all(partial);  // a crashed earlier save's leftovers
    fs::create_directories(partial);
  });

  // This rank's K/V rows, every attention layer, in layer order.
  const int64_t kvd = c.num_kv_heads * c.head_dim, rows = layout.tokens_of(me);
  Json mine;
  check_collectively(group, [&]() {
    std::string kv;
    for (int li : attention_layers(c)) {
      const LayerCache& lc = st.state.layers.at(li);
      if (lc.kv_rows != rows || static_cast<int64_t>(lc.k.size()) != rows * kvd)
        throw Error("save_state: rank " + std::to_string(me) + " holds " + std::to_string(lc.kv_rows) +
                    " K/V rows of layer " + std::to_string(li) + ", expected " + std::to_string(rows));
      append_kv(kv, lc.k, kv_dtype);
      append_kv(kv, lc.v, kv_dtype);
    }
    write_durably((fs::path(partial) / kv_file_name(me)).string(), kv);
    mine = file_entry(kv_file_name(me), kv);
    mine["rank"] = me;
    mine["kv_rows"] = rows;
    if (me == st.driver) {
      std::string drv;
      for (size_t li = 0; li < c.layers.size(); ++li) {
        if (c.layers[li] != LayerKind::Mamba) continue;
        const LayerCache& lc = st.state.layers.at(li);
        if (static_cast<int64_t>(lc.conv_history.size()) != c.conv_history_elems() ||
            static_cast<int64_t>(lc.ssm_state.size()) != c.ssm_state_elems())
          throw Error("save_state: the driver holds no Mamba state for layer " + std::to_string(li));
        append(drv, lc.conv_history);
        append(drv, lc.ssm_state);
      }
      append(drv, st.last_hidden);
      write_durably((fs::path(partial) / "driver.bin").string(), drv);
      mine["driver"] = file_entry("driver.bin", drv);
    }
  });

  // Rank 0 gathers the entries, writes the manifest last and publishes the directory.
  const std::string text = mine.dump();
  const std::vector<size_t> counts = group.all_gather_counts(text.size());
  std::string all(std::accumulate(counts.begin(), counts.end(), size_t(0)), '\0');
  group.all_gather_v(text.data(), all.data(), counts);
  check_collectively(group, [&]() {
    if (me != 0) return;
    Json shards = Json::array(), driver_file;
    size_t at = 0;
    for (int r = 0; r < P; ++r) {
      Json e = Json::parse(all.substr(at, counts[r]));
      at += counts[r];
      if (e.contains("driver")) driver_file = e["driver"], e.erase("driver");
      shards.push_back(e);
    }
    std::string id_bytes;
    append(id_bytes, ids);
    write_durably((fs::path(partial) / "ids.bin").string(), id_bytes);
    Json segments = Json::array();
    for (const Segment& s : layout.segments) segments.push_back({s.begin, s.len, s.owner});
    Json m = {{"format", kFormat},
              {"format_version", kStateFormatVersion},
              {"dtype", "float32"},
              {"kv_dtype", kv_dtype_name(kv_dtype)},
              {"n_tokens", layout.length},
              {"layout", layout_name(layout.kind)},
              {"ranks", P},
              {"driver", st.driver},
              {"segments", segments},
              {"shape",
               {{"layers", c.pattern()},
                {"kv_width", kvd},
                {"conv_history", c.conv_history_elems()},
                {"ssm_state", c.ssm_state_elems()},
                {"hidden", c.hidden_size}}},
              {"kv_shards", shards},
              {"driver_file", driver_file},
              {"ids_file", file_entry("ids.bin", id_bytes)},
              {"about", about}};
    write_durably((fs::path(partial) / "manifest.json").string(), m.dump(1) + "\n");
    sync_directory(partial);
    const std::string old = dir + ".old";
    if (fs::exists(dir)) {
      fs::remove_all(old);
      fs::rename(dir, old);
    }
    fs::rename(partial, dir);
    sync_directory(fs::path(dir).parent_path().empty() ? "." : fs::path(dir).parent_path().string());
    fs::remove_all(old);
  });
}

Json read_state_manifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / "manifest.json").string();
  if (!fs::is_directory(dir)) throw Error(dir + " is not a ringscan state (a directory written by ringscan prefill)");
  if (!fs::exists(path)) throw Error(dir + " has no manifest.json: not a ringscan state, or its save did not finish");
  Json m = read_json_file(path);
  if (!m.is_object() || m.value("format", "") != kFormat)
    throw Error(path + ": \"format\" is not \"" + std::string(kFormat) + "\"");
  const int version = m.value("format_version", -1);
  if (version != 1 && version != kStateFormatVersion)
    throw Error(path + ": format_version " + m.value("format_version", Json(-1)).dump() + ", this ringscan reads 1 to " +
                std::to_string(kStateFormatVersion));
  state_kv_dtype(m);
  return m;
}

DType state_kv_dtype(const Json& m) {
  const std::string d = m.value("kv_dtype", "float32");
  if (d == "float32") return DType::F32;
  if (d == "bfloat16") return DType::BF16;
  throw Error("manifest.json: kv_dtype \"" + d + "\" is neither \"float32\" nor \"bfloat16\"");
}

LoadedState load_state(comm::Communicator& group, const std::string& dir, const ModelConfig& c) {
  const int me = group.rank(), P = group.size();
  LoadedState out;
  std::string ids_bytes, driver_bytes;
  std::vector<int> atts = attention_layers(c);
  const int64_t kvd = c.num_kv_heads * c.head_dim;
  check_collectively(group, [&]() {
    out.manifest = read_state_manifest(dir);
    const Json& m = out.manifest;
    const Json& shape = m.at("shape");
    const std::string where = (fs::path(dir) / "manifest.json").string();
    if (shape.at("layers").get<std::string>() != c.pattern() || shape.at("kv_width").get<int64_t>() != kvd ||
        shape.at("conv_history").get<int64_t>() != c.conv_history_elems() ||
        shape.at("ssm_state").get<int64_t>() != c.ssm_state_elems() ||
        shape.at("hidden").get<int64_t>() != c.hidden_size)
      throw Error(where + ": the state's shape " + shape.dump() + " is not this model's (layers " + c.pattern() + ")");
    out.saved_ranks = m.at("ranks").get<int>();
    out.layout = make_layout(m.at("n_tokens").get<int64_t>(), P, parse_layout(m.at("layout").get<std::string>()));
    // Each data file is verified by one rank; every rank reads ids.bin.
    const Json& shards = m.at("kv_shards");
    if (static_cast<int>(shards.size()) != out.saved_ranks)
      throw Error(where + ": " + std::to_string(shards.size()) + " kv_shards for " + std::to_string(out.saved_ranks) +
                  " ranks");
    out.kv_dtype = kv_dtype_name(state_kv_dtype(m));
    ids_bytes = read_checked(dir, m.at("ids_file"));
    out.ids.resize(ids_bytes.size() / sizeof(int32_t));
    std::memcpy(out.ids.data(), ids_bytes.data(), out.ids.size() * sizeof(int32_t));
    if (static_cast<int64_t>(out.ids.size()) != out.layout.length)
      throw Error(where + ": ids.bin holds " + std::to_string(out.ids.size()) + " ids but n_tokens is " +
                  std::to_string(out.layout.length));
  });

  const int64_t L = out.layout.length;
  SequenceParallelDecodeState& st = out.st;
  st.driver = out.layout.segments.back().owner;
  st.length = L;
  st.state.position = L;
  st.state.layers.resize(c.layers.size());
  check_collectively(group, [&]() {
    const Json& m = out.manifest;
    const Json& shards = m.at("kv_shards");
    const DType dtype = state_kv_dtype(m);
    const int esize = dtype_size(dtype);
    // Where each saved segment's rows sit in its owner's file.
    std::vector<Segment> saved;
    for (const Json& s : m.at("segments")) saved.push_back(Segment{s.at(0), s.at(1), s.at(2).get<int>()});
    std::vector<int64_t> row_in_file(saved.size()), rows_of(out.saved_ranks, 0);
    for (size_t i = 0; i < saved.size(); ++i) {
      row_in_file[i] = rows_of.at(saved[i].owner);
      rows_of[saved[i].owner] += saved[i].len;
    }
    // Every shard is verified by one rank (over its mapping); a rank maps the shards it reads.
    std::vector<std::shared_ptr<const MappedFile>> files(out.saved_ranks);
    auto file_of = [&](int owner) -> const MappedFile& {
      if (!files[owner]) files[owner] = map_checked(dir, shards.at(owner));
      const uint64_t need = static_cast<uint64_t>(atts.size()) * 2 * rows_of[owner] * kvd * esize;
      if (files[owner]->size() != need)
        throw Error(files[owner]->path() + " has " + std::to_string(files[owner]->size()) + " bytes, but " +
                    std::to_string(rows_of[owner]) + " K/V rows of " + std::to_string(atts.size()) +
                    " attention layers in " + out.kv_dtype + " need " + std::to_string(need));
      return *files[owner];
    };
    for (int r = me; r < out.saved_ranks; r += P) check_sha256(file_of(r), shards.at(r));

    // Every row is used where it lies, in the read-only mapping of the file that
    // holds it: this rank's new segments are ranges of one or more saved shards
    // (one whole shard when loaded as saved), K and V alike. Nothing needs a
    // copy: a mapping starts on a page boundary and every row at a multiple of
    // its element size from it (the file is whole layers of whole rows), so the
    // rows are always aligned for their type; bf16 rows are widened by the
    // attention kernel, tile by tile (kernels::cpu::attention_block_kv).
    PrefixKV& kv = out.prefix_kv;
    kv.dtype = dtype;
    kv.layers.assign(c.layers.size(), {});
    const int64_t rows = out.layout.tokens_of(me), row_bytes = kvd * esize;
    for (int li : atts) st.state.layers[li].kv_rows = rows;
    auto mapped = std::make_shared<std::vector<std::shared_ptr<const MappedFile>>>();  // the files the pieces use
    for (int si : out.layout.segments_of(me)) {
      const Segment& want = out.layout.segments[si];
      for (size_t i = 0; i < saved.size(); ++i) {
        const int64_t b = std::max(want.begin, saved[i].begin), e = std::min(want.end(), saved[i].end());
        if (b >= e) continue;
        const int owner = saved[i].owner;
        const uint8_t* base = file_of(owner).data();
        if (std::find(mapped->begin(), mapped->end(), files[owner]) == mapped->end()) mapped->push_back(files[owner]);
        const int64_t first = row_in_file[i] + (b - saved[i].begin), n = e - b;
        for (size_t a = 0; a < atts.size(); ++a) {
          const uint8_t* k = base + (static_cast<int64_t>(a) * 2 * rows_of[owner] + first) * row_bytes;  // K block,
          const uint8_t* v = k + rows_of[owner] * row_bytes;                                               // then V
          std::vector<PrefixKV::Piece>& pieces = kv.layers[atts[a]].pieces;
          // Rows that continue the previous piece in the same file (a segment split
          // at a chunk boundary) extend it: one kernel call per contiguous range.
          if (!pieces.empty() && static_cast<const uint8_t*>(pieces.back().k) + pieces.back().rows * row_bytes == k &&
              static_cast<const uint8_t*>(pieces.back().v) + pieces.back().rows * row_bytes == v)
            pieces.back().rows += n;
          else
            pieces.push_back({k, v, n});
        }
      }
    }
    for (int li : atts)
      if (kv.layers[li].rows() != rows)
        throw Error((fs::path(dir) / "manifest.json").string() + ": its segments give rank " + std::to_string(me) +
                    " " + std::to_string(kv.layers[li].rows()) + " K/V rows, its part of the layout is " +
                    std::to_string(rows));
    kv.keep = mapped;
    out.kv_mapped = true;
  });
  check_collectively(group, [&]() {
    const Json& m = out.manifest;
    if (me == st.driver) {
      driver_bytes = read_checked(dir, m.at("driver_file"));
      const char* p = driver_bytes.data();
      const int64_t need =
          (c.count(LayerKind::Mamba) * (c.conv_history_elems() + c.ssm_state_elems()) + c.hidden_size) * 4;
      if (static_cast<int64_t>(driver_bytes.size()) != need)
        throw Error((fs::path(dir) / "driver.bin").string() + " has " + std::to_string(driver_bytes.size()) +
                    " bytes, this model's state needs " + std::to_string(need));
      auto take = [&](std::vector<float>& v, int64_t n) {
        v.resize(n);
        std::memcpy(v.data(), p, n * 4);
        p += n * 4;
      };
      for (size_t li = 0; li < c.layers.size(); ++li) {
        if (c.layers[li] != LayerKind::Mamba) continue;
        take(st.state.layers[li].conv_history, c.conv_history_elems());
        take(st.state.layers[li].ssm_state, c.ssm_state_elems());
      }
      take(st.last_hidden, c.hidden_size);
    }
  });
  return out;
}

StateSizes state_sizes(const Json& m) {
  StateSizes s;
  for (const Json& e : m.at("kv_shards")) s.kv_per_rank.push_back(e.at("bytes").get<uint64_t>());
  s.driver = m.at("driver_file").at("bytes").get<uint64_t>();
  s.ids = m.at("ids_file").at("bytes").get<uint64_t>();
  return s;
}

}  // namespace ringscan
