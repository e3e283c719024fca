#include "io/result_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>

#include "io/final_file.h"
#include "io/final_reader.h"
#include "io/fs_util.h"
#include "io/mpi_agree.h"
#include "io/part_file.h"
#include "io/utf8_check.h"
#include "util/error.h"

namespace ringscan::io {

namespace {

// 2: part files RSPART02 (status and content digest in the index); 3: RSPART03 (text and offsets)
constexpr int kRunFormatVersion = 3;
// The final file while it is written: inside the parts folder, so that it is never a
// file of the user's (and goes with the folder).
constexpr const char* kFinalTmp = "result.h5.tmp";
// What `<out>.lock` holds once a ringscan run has taken it (an empty one is a run's
// that died at once): anything else is the user's file, never used or deleted.
constexpr const char* kLockText = "ringscan result lock\n";

// A value for a sentence: short strings as they are, long ones (digests) cut.
std::string short_value(const Json& v) {
  std::string t = v.is_string() ? v.get<std::string>() : v.dump();
  return t.size() > 20 ? t.substr(0, 12) + "..." : t;
}

// "model_dir /x/demo" for each member of a run's `about`.
std::string about_text(const Json& about) {
  std::string s;
  if (!about.is_object()) return s;
  for (const auto& [k, v] : about.items()) s += (s.empty() ? "" : ", ") + k + " " + (v.is_string() ? v.get<std::string>() : v.dump());
  return s;
}

// Why two identities differ, for the error sentence: the keys, and for up to three of
// them both values, with what names each run (its `about`, e.g. the model folder).
std::string identity_difference(const Json& ours, const Json& theirs, const Json& our_about, const Json& their_about) {
  if (!theirs.is_object()) return "its run identity is not a JSON object";
  std::vector<std::string> keys;
  for (const auto& [k, v] : ours.items())
    if (!theirs.contains(k) || theirs.at(k) != v) keys.push_back(k);
  for (const auto& [k, v] : theirs.items())
    if (!ours.contains(k)) keys.push_back(k);
  if (keys.empty()) return "";
  std::string s = "run identity differs in ";
  for (size_t i = 0; i < keys.size() && i < 5; ++i) s += (i ? ", '" : "'") + keys[i] + "'";
  if (keys.size() > 5) s += " and " + std::to_string(keys.size() - 5) + " more";
  std::string that_run, this_run;
  for (size_t i = 0; i < keys.size() && i < 3; ++i) {
    const Json& a = theirs.contains(keys[i]) ? theirs.at(keys[i]) : Json();
    const Json& b = ours.contains(keys[i]) ? ours.at(keys[i]) : Json();
    if (a.is_object() || a.is_array() || b.is_object() || b.is_array()) continue;  // model_config etc.: too long
    that_run += (that_run.empty() ? "" : ", ") + keys[i] + " " + short_value(a);
    this_run += (this_run.empty() ? "" : ", ") + keys[i] + " " + short_value(b);
  }
  const std::string that_about = about_text(their_about), this_about = about_text(our_about);
  if (!that_about.empty() || !this_about.empty()) {
    that_run += (that_run.empty() ? "" : ", ") + (that_about.empty() ? std::string("not recorded") : that_about);
    this_run += (this_run.empty() ? "" : ", ") + this_about;
  }
  if (!that_run.empty()) s += " (that run: " + that_run + "; this run: " + this_run + ")";
  return s;
}

std::string run_difference(const Json& identity, const Json& about, const std::string& hash, uint64_t n,
                           const Json& their_identity, const Json& their_about, const std::string& their_hash,
                           uint64_t their_n) {
  std::string d = identity_difference(identity, their_identity, about, their_about);
  if (!d.empty()) return "a different model or options: " + d;
  if (their_n != n)
    return "a different document list: " + std::to_string(their_n) + " documents instead of " + std::to_string(n);
  if (their_hash != hash) return "a different document list (same count, other names or order)";
  return "";
}

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// The names ringscan writes inside a parts folder (and their `.tmp` while being written).
bool is_own_name(const std::string& name) {
  PartName p;
  if (name == kRunFile || name == kFinalTmp || parse_part_name(name, p)) return true;
  return ends_with(name, ".tmp") && name.size() > 4 && is_own_name(name.substr(0, name.size() - 4));
}

// Why `dir` is not a parts folder of a ringscan run ("" when it is one): a real folder
// (not a link) holding only plain files of the names ringscan writes, with a run.json of
// ringscan's format, or nothing yet (a run that died before writing it). ringscan uses,
// and deletes, only such folders.
std::string not_a_parts_folder(const std::string& dir) {
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return "";
  if (S_ISLNK(st.st_mode)) return "it is a symbolic link";
  if (!S_ISDIR(st.st_mode)) return "it is not a folder";
  bool has_parts = false, has_run = false;
  for (const std::string& name : list_dir(dir)) {
    struct stat e;
    if (!is_own_name(name) || lstat((dir + "/" + name).c_str(), &e) != 0 || !S_ISREG(e.st_mode))
      return "it holds " + name + ", which ringscan did not write";
    PartName p;
    has_parts |= parse_part_name(name, p);
    has_run |= name == kRunFile;
  }
  if (!has_run) return has_parts ? "it holds part files but no " + std::string(kRunFile) : "";
  Json run;
  try {
    run = read_json_file(dir + "/" + kRunFile);
  } catch (const std::exception&) {
    return "its " + std::string(kRunFile) + " is not ringscan's (not JSON)";
  }
  if (!run.is_object() || run.value("format", "") != kRunFormat)
    return "its " + std::string(kRunFile) + " is not ringscan's (no \"format\": \"" + kRunFormat + "\")";
  return "";
}

// Removes a parts folder of a ringscan run: part files first, run.json last, so that a
// crash in between leaves a folder that is still recognised as this run's (or as empty).
// Anything else is not ringscan's to delete: an Error, before anything is removed.
void remove_parts_dir(const std::string& dir) {
  if (!path_exists(dir)) return;
  if (const std::string why = not_a_parts_folder(dir); !why.empty())
    throw Error("cannot remove " + dir + ": " + why + "; ringscan deletes only what it wrote");
  for (const std::string& n : list_dir(dir)) {
    if (n == kRunFile) continue;
    remove_file(dir + "/" + n);
    crash_point("parts_file_removed");
  }
  remove_flat_dir(dir);
}

// "a character device" etc.: what a path that is not a regular file or folder is.
std::string special_file_kind(mode_t m) {
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

void require_utf8(const std::string& s, const std::string& what, uint64_t doc) {
  if (!is_valid_utf8(s))
    throw Error("result of document " + std::to_string(doc) + ": " + what + " is not valid UTF-8");
}

// Reads a part file whole: its index and every record (checksums, decoding, document
// indexes below n). "" when it is sound, else the sentence that says why not.
std::string check_part(const std::string& path, uint64_t n_documents) {
  try {
    for (const PartEntry& e : read_part_index(path)) {
      if (e.document >= n_documents)
        return "part file " + path + " is damaged: it holds document " + std::to_string(e.document) +
               " but the run has " + std::to_string(n_documents) + " documents";
      (void)read_part_record(path, e);
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// The way out of damaged parts, for the error sentence.
std::string repair_advice(const std::string& parts, const std::vector<DamagedPart>& damaged) {
  const std::string first = parts + "/" + damaged[0].name;
  const size_t k = damaged.size();
  return damaged[0].why +
         (k > 1 ? " (and " + std::to_string(k - 1) + " more damaged part file" + (k > 2 ? "s" : "") + ")" : "") +
         "; rerun with --repair to drop the damaged part file" + (k > 1 ? "s" : "") +
         " and compute their documents again, or delete " + (k > 1 ? "them" : first) + " yourself";
}

// A complete output that must be reopened: its results, except those of the documents
// to compute again, become part files of attempt 0, in pieces of about 64 MiB.
void final_to_parts(const std::string& out, const std::string& parts, const std::vector<uint8_t>& recompute) {
  FinalFileReader f(out);
  std::vector<DocumentResult> batch;
  uint64_t bytes = 0, seq = 0;
  auto write = [&]() {
    if (batch.empty()) return;
    write_file_atomic(parts + "/" + part_name(0, 0, seq++), encode_part(batch));
    batch.clear();
    bytes = 0;
  };
  for (uint64_t i = 0; i < f.n_documents(); ++i) {
    if (recompute[i]) continue;
    batch.push_back(f.read(i));
    bytes += 8 * f.n_tokens(i) + 256;
    if (bytes >= (64ull << 20)) write();
  }
  write();
}

// JSON path ("model_config.x[2]") of the first NaN or infinity in v, "" if none.
std::string non_finite_member(const Json& v, const std::string& at = "the top level") {
  if (v.is_number_float() && !std::isfinite(v.get<double>())) return at;
  if (v.is_object())
    for (const auto& [k, x] : v.items())
      if (std::string w = non_finite_member(x, at == "the top level" ? "'" + k + "'" : at + "." + k); !w.empty()) return w;
  if (v.is_array())
    for (size_t i = 0; i < v.size(); ++i)
      if (std::string w = non_finite_member(v[i], at + "[" + std::to_string(i) + "]"); !w.empty()) return w;
  return "";
}

void require_digest(const std::string& d, uint64_t doc) {
  if (d.empty()) return;
  bool ok = d.size() == 64;
  for (char c : d) ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!ok)
    throw Error("content digest of document " + std::to_string(doc) + " is \"" + utf8_sanitize(d) +
                "\"; expected 64 lowercase hex digits (SHA-256) or none");
}

}  // namespace

Json ResultStore::run_json(const ResultStore& s) {
  return Json{{"format", kRunFormat},  {"version", kRunFormatVersion}, {"identity", s.identity_},
              {"about", s.about_},     {"documents_hash", s.documents_hash_},
              {"n_documents", uint64_t(s.names_.size())}};
}

std::string documents_hash(const std::vector<std::string>& names) {
  uint64_t h = fnv1a64("ringscan documents");
  for (const std::string& n : names) {
    h = fnv1a64(n, h);
    h = fnv1a64(std::string_view("\0", 1), h);
  }
  return "fnv1a64:" + hex64(h);
}

ResultStore::~ResultStore() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::unique_ptr<ResultStore> ResultStore::open(const std::string& out_path, const Json& identity, bool overwrite,
                                               const std::vector<std::string>& document_names, MPI_Comm comm,
                                               const std::vector<std::string>& content_sha256, const Json& about,
                                               bool repair) {
  std::unique_ptr<ResultStore> store(new ResultStore());
  ResultStore& s = *store;
  s.comm_ = comm;
  MPI_Comm_rank(comm, &s.rank_);
  MPI_Comm_size(comm, &s.size_);
  s.out_ = out_path;
  s.identity_ = identity;
  s.about_ = about;
  s.names_ = document_names;
  s.documents_hash_ = documents_hash(s.names_);
  const uint64_t n = s.names_.size();
  s.content_ = content_sha256.empty() ? std::vector<std::string>(n) : content_sha256;
  const std::string parts = s.parts_dir();
  const std::string run_file = parts + "/" + kRunFile;

  std::string state;  // rank 0 -> all: "complete" / "fresh" / "resume" / "reopen"
  s.done_.assign(n, 0);
  uint64_t counts[6] = {0, 0, 0, 0, 0, 0};  // changed, failed before, complete: ok, skipped, failed; parts dropped
  agree(comm, [&] {
    if (s.out_.empty()) throw Error("no output path given; expected --out FILE.h5");
    if (!identity.is_object()) throw Error("result store: the run identity must be a JSON object");
    if (!about.is_object()) throw Error("result store: the run's description (about) must be a JSON object");
    // NaN and infinities are written as JSON null: two different runs would look the same.
    if (const std::string where = non_finite_member(identity); !where.empty())
      throw Error("result store: the run identity holds a non-finite number at " + where);
    if (s.content_.size() != n)
      throw Error("result store: " + std::to_string(s.content_.size()) + " content digests for " + std::to_string(n) +
                  " documents");
    for (uint64_t i = 0; i < n; ++i) {
      require_utf8(s.names_[i], "the document name", i);
      require_digest(s.content_[i], i);
    }
    if (s.rank_ != 0) return;
    const std::string folder = parent_dir(s.out_);
    if (!is_directory(folder))
      throw Error("the folder " + folder + " of output " + s.out_ + " does not exist; create it first");
    // Only a regular file (or a link to one) may be replaced, and only a ringscan result
    // (checked below): never a device, FIFO or socket, whatever the options.
    struct stat st;
    if (lstat(s.out_.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode) && stat(s.out_.c_str(), &st) != 0)
        throw Error("output " + s.out_ + " is a symbolic link to nothing (" + std::strerror(errno) +
                    "); expected the path of an .h5 file");
      if (S_ISDIR(st.st_mode)) throw Error("output " + s.out_ + " is a folder; expected the path of an .h5 file");
      if (!S_ISREG(st.st_mode))
        throw Error("output " + s.out_ + " is " + special_file_kind(st.st_mode) +
                    ", not a regular file; expected the path of an .h5 file");
    }
    const std::string lock = s.out_ + ".lock";
    if (lstat(lock.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      throw Error(lock + " exists and is not a regular file; ringscan keeps its lock there: move it away or choose "
                         "another output path");
    s.lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (s.lock_fd_ < 0)
      throw Error("cannot create " + lock + " next to output " + s.out_ + ": " + std::strerror(errno) +
                  "; expected a writable output folder");
    if (flock(s.lock_fd_, LOCK_EX | LOCK_NB) != 0)
      throw Error("another ringscan run is writing " + s.out_ + " (" + lock +
                  " is locked); wait for it to finish or stop it first");
    {
      const uint64_t size = file_size(lock);
      const std::string text = size == std::strlen(kLockText) ? read_whole_file(lock) : std::string(size ? "?" : "");
      if (!text.empty() && text != kLockText)
        throw Error(lock + " exists and was not written by ringscan (ringscan keeps its lock there and deletes it at "
                           "the end); move it away or choose another output path");
      if (text.empty() && ::pwrite(s.lock_fd_, kLockText, std::strlen(kLockText), 0) != ssize_t(std::strlen(kLockText)))
        throw Error("cannot write " + lock + ": " + std::strerror(errno));
    }
    // The parts folder, if any, must be ringscan's before anything is kept or deleted.
    if (const std::string why = not_a_parts_folder(parts); !why.empty())
      throw Error(parts + " is not a folder of a ringscan run (" + why +
                  "); ringscan deletes only what it wrote, so move it away or choose another output path");

    if (path_exists(s.out_)) {
      std::string why;
      try {
        FinalIdentity id = read_final_identity(s.out_);
        why = run_difference(s.identity_, s.about_, s.documents_hash_, n, id.run_identity, id.run_about,
                             id.documents_hash, id.n_documents);
      } catch (const Error& e) {
        if (!is_result_file(s.out_))
          throw Error("output " + s.out_ +
                      " exists and is not a ringscan result file; ringscan replaces only its own results, also with "
                      "--overwrite: move it away or choose another output path");
        // A result file of another ringscan version, or damaged: say why it cannot be reused.
        why = std::string("results this ringscan cannot reuse (") + e.what() + ")";
      }
      if (why.empty()) {
        // Same run. Documents that changed since, or failed, are computed again; the
        // rest of the file is kept.
        std::vector<uint8_t> recompute(n, 0);
        try {
          FinalFileReader f(s.out_);
          for (uint64_t i = 0; i < n; ++i) {
            const bool failed = f.status(i) == doc_status::kFailed;
            const bool changed = f.content_sha256(i) != s.content_[i];
            recompute[i] = failed || changed;
            counts[0] += changed;
            counts[1] += failed && !changed;
            counts[f.status(i) == doc_status::kOk ? 2 : f.status(i) == doc_status::kSkipped ? 3 : 4] += 1;
          }
        } catch (const Error& e) {
          throw Error("output " + s.out_ + " cannot be checked for changed or failed documents (" + e.what() +
                      "); rerun with --overwrite to compute it again, or choose another output path");
        }
        // A crash between renaming the final file and removing the parts leaves them stale.
        remove_parts_dir(parts);
        if (counts[0] + counts[1] == 0) {
          remove_file(lock);  // nothing to write; the lock is held until this store goes
          state = "complete";
          s.done_.assign(n, 1);
          return;
        }
        // The parts hold every kept result before the final file goes: a crash in
        // between finds both and starts this reopening again.
        if (mkdir(parts.c_str(), 0755) != 0)
          throw Error("cannot create " + parts + " next to output " + s.out_ + ": " + std::strerror(errno) +
                      "; expected a writable output folder");
        write_file_atomic(run_file, run_json(s).dump(2) + "\n");
        final_to_parts(s.out_, parts, recompute);
        fsync_dir(parts);
        remove_file(s.out_);
        fsync_dir(folder);
        state = "reopen";
      } else {
        if (!overwrite)
          throw Error("output " + s.out_ + " already exists with " + why +
                      "; rerun with --overwrite to replace it, or choose another output path");
        remove_file(s.out_);
      }
    }

    if (state.empty() && path_exists(parts)) {
      std::string why;
      if (path_exists(run_file)) {
        Json run = read_json_file(run_file);
        if (run.value("version", 0) != kRunFormatVersion) {
          why = "another ringscan version (" + std::string(kRunFile) + " version " + run.value("version", Json()).dump() +
                "; this one writes " + std::to_string(kRunFormatVersion) + ")";
        } else {
          why = run_difference(s.identity_, s.about_, s.documents_hash_, n, run.value("identity", Json()),
                               run.value("about", Json::object()), run.value("documents_hash", ""),
                               run.value("n_documents", uint64_t(0)));
        }
      } else {
        // Without run.json no part was ever written (run.json comes first): nothing to keep.
        remove_parts_dir(parts);
      }
      if (!why.empty()) {
        if (!overwrite)
          throw Error("the unfinished results in " + parts + " are of " + why +
                      "; rerun with --overwrite to discard them, or choose another output path");
        remove_parts_dir(parts);
      }
    }

    if (state.empty()) state = "resume";
    if (!path_exists(parts)) {
      if (mkdir(parts.c_str(), 0755) != 0)
        throw Error("cannot create " + parts + " next to output " + s.out_ + ": " + std::strerror(errno) +
                    "; expected a writable output folder");
      write_file_atomic(run_file, run_json(s).dump(2) + "\n");
      fsync_dir(folder);
      state = "fresh";
    }
    // Leftovers of writes a crash interrupted (parts, the final file): never complete,
    // never needed.
    for (const std::string& name : list_dir(parts))
      if (ends_with(name, ".tmp")) remove_file(parts + "/" + name);
  });
  bcast_bytes(state, 0, comm);

  // A resumed run reads every part whole now, spread over the ranks, so that damage is
  // found before anything is computed rather than at the end.
  std::string damaged_list;  // on rank 0: "name\0why\0" per damaged part
  if (state == "resume") {
    std::string names;
    agree(comm, [&] {
      if (s.rank_ != 0) return;
      for (const std::string& name : list_dir(parts)) {
        PartName p;
        if (parse_part_name(name, p)) names += name + '\n';
      }
    });
    bcast_bytes(names, 0, comm);
    std::string mine;
    size_t k = 0;
    for (size_t b = 0, e; b < names.size(); b = e + 1, ++k) {
      e = names.find('\n', b);
      if (k % size_t(s.size_) != size_t(s.rank_)) continue;
      const std::string name = names.substr(b, e - b);
      if (const std::string why = check_part(parts + "/" + name, n); !why.empty()) mine += name + '\0' + why + '\0';
    }
    damaged_list = gather_bytes(mine, 0, comm);
  }

  agree(comm, [&] {
    if (s.rank_ != 0 || state == "complete") return;
    std::vector<DamagedPart> damaged;
    for (size_t b = 0; b < damaged_list.size();) {
      const size_t e1 = damaged_list.find('\0', b), e2 = damaged_list.find('\0', e1 + 1);
      damaged.push_back({damaged_list.substr(b, e1 - b), damaged_list.substr(e1 + 1, e2 - e1 - 1)});
      b = e2 + 1;
    }
    int max_attempt = -1;
    PartIndex idx;
    for (;;) {
      std::vector<DamagedPart> duplicates;
      if (damaged.empty()) idx = scan_parts(parts, n, &max_attempt, &duplicates);
      damaged.insert(damaged.end(), duplicates.begin(), duplicates.end());
      if (damaged.empty()) break;
      if (!repair) throw Error(repair_advice(parts, damaged));
      // Dropping a part only loses results: their documents are computed again.
      for (const DamagedPart& d : damaged) remove_file(parts + "/" + d.name);
      fsync_dir(parts);
      counts[5] += damaged.size();
      damaged.clear();
    }
    for (uint64_t i = 0; i < n; ++i) {
      if (idx.at[i].first == UINT32_MAX) continue;
      const PartEntry& e = idx.at[i].second;
      const bool changed = e.content_sha256 != s.content_[i];
      s.done_[i] = !changed && !e.failed;
      if (state == "resume") counts[0] += changed, counts[1] += e.failed && !changed;
    }
    s.attempt_ = max_attempt + 1;
  });

  check_mpi(MPI_Bcast(&s.attempt_, 1, MPI_INT, 0, comm), "MPI_Bcast");
  check_mpi(MPI_Bcast(counts, 6, MPI_UINT64_T, 0, comm), "MPI_Bcast");
  std::string done(reinterpret_cast<const char*>(s.done_.data()), s.done_.size());
  bcast_bytes(done, 0, comm);
  std::memcpy(s.done_.data(), done.data(), done.size());
  s.needed_.assign(n, 0);
  for (uint64_t i = 0; i < n; ++i) s.needed_[i] = !s.done_[i];

  std::string again;
  if (counts[0]) again += "; " + std::to_string(counts[0]) + " changed since (computed again)";
  if (counts[1]) again += "; " + std::to_string(counts[1]) + " failed before (tried again)";
  if (counts[5])
    again += "; " + std::to_string(counts[5]) + " damaged part file" + (counts[5] > 1 ? "s" : "") +
             " dropped (--repair): their documents are computed again";
  if (state == "complete") {
    s.complete_ = true;
    s.status_counts_ = {counts[2], counts[3], counts[4]};
    s.summary_ = s.out_ + " is already complete for this model, options and documents; nothing to do";
  } else if (state == "fresh") {
    s.summary_ = "writing results of " + std::to_string(n) + " documents to " + s.out_ + " (progress in " + parts + ")";
  } else if (state == "reopen") {
    s.summary_ = "reopening " + s.out_ + ": " + std::to_string(s.n_completed()) + " of " + std::to_string(n) +
                 " documents kept" + again + " (progress in " + parts + ")";
  } else {
    s.summary_ = "resuming " + s.out_ + ": " + std::to_string(s.n_completed()) + " of " + std::to_string(n) +
                 " documents already done (from " + parts + ")" + again;
  }
  return store;
}

std::set<uint64_t> ResultStore::completed() const {
  std::set<uint64_t> out;
  for (uint64_t i = 0; i < done_.size(); ++i)
    if (done_[i]) out.insert(out.end(), i);
  return out;
}

uint64_t ResultStore::n_completed() const {
  uint64_t k = 0;
  for (uint8_t d : done_) k += d;
  return k;
}

void ResultStore::add(DocumentResult r) {
  const uint64_t n = names_.size();
  const std::string doc = "result of document " + std::to_string(r.index);
  if (complete_) throw Error(doc + ": " + out_ + " is already complete; nothing may be added");
  if (r.index >= n) throw Error(doc + ": the run has only " + std::to_string(n) + " documents");
  if (done_[r.index]) throw Error(doc + " (" + names_[r.index] + ") was already added or completed in an earlier attempt");
  if (r.path.empty()) r.path = names_[r.index];
  if (r.content_sha256.empty()) r.content_sha256 = content_[r.index];
  require_digest(r.content_sha256, r.index);
  if (r.content_sha256 != content_[r.index])
    throw Error(doc + " (" + names_[r.index] + ") was computed from content other than the run's (content digest " +
                r.content_sha256 + " instead of " + content_[r.index] + ")");
  if (r.path != names_[r.index])
    throw Error(doc + " names " + r.path + " but the document list has " + names_[r.index] + " at that index");
  if (r.status == doc_status::kOk) {
    if (!r.error.empty()) throw Error(doc + " has status ok and an error text; expected an empty error");
  } else if (r.status == doc_status::kSkipped || r.status == doc_status::kFailed) {
    if (r.error.empty()) throw Error(doc + " has status " + r.status + " but no reason; expected the reason in error");
  } else {
    throw Error(doc + " has status '" + r.status + "'; expected ok, skipped or failed");
  }
  const uint64_t nt = r.token_ids.size();
  if (!r.logprob.empty() && r.logprob.size() != nt)
    throw Error(doc + " has " + std::to_string(r.logprob.size()) + " log-probs for " + std::to_string(nt) +
                " tokens; expected none or one per token");
  if (r.n_scored > nt) throw Error(doc + " has n_scored " + std::to_string(r.n_scored) + " > " + std::to_string(nt) + " tokens");
  if (r.text_begin.size() != r.text_end.size() || (!r.text_begin.empty() && r.text_begin.size() != nt))
    throw Error(doc + " has " + std::to_string(r.text_begin.size()) + " token starts and " +
                std::to_string(r.text_end.size()) + " token ends for " + std::to_string(nt) +
                " tokens; expected none or one of each per token");
  for (size_t t = 0; t < r.text_begin.size(); ++t)
    if (r.text_begin[t] > r.text_end[t] || r.text_end[t] > r.text.size())
      throw Error(doc + ": token " + std::to_string(t) + " covers bytes [" + std::to_string(r.text_begin[t]) + ", " +
                  std::to_string(r.text_end[t]) + ") outside the document's " + std::to_string(r.text.size()) +
                  " bytes of text");
  for (const FileResult& f : r.files) {
    if (f.token_begin > f.token_end || f.token_end > nt)
      throw Error(doc + ": file " + f.path + " has token range [" + std::to_string(f.token_begin) + ", " +
                  std::to_string(f.token_end) + ") outside the document's " + std::to_string(nt) + " tokens");
    if (f.text_begin > f.text_end || f.text_end > r.text.size())
      throw Error(doc + ": file " + f.path + " has text range [" + std::to_string(f.text_begin) + ", " +
                  std::to_string(f.text_end) + ") outside the document's " + std::to_string(r.text.size()) + " bytes");
    if (f.status != file_status::kOk && f.status != file_status::kTruncated && f.status != file_status::kDropped)
      throw Error(doc + ": file " + f.path + " has status '" + f.status + "'; expected ok, truncated or dropped");
    require_utf8(f.path, "a file path", r.index);
    require_utf8(f.header, "a file header", r.index);
  }
  auto check_dim = [&](const std::vector<float>& v, uint64_t& dim, const char* which) {
    if (v.empty()) return;
    if (dim == 0) dim = v.size();
    if (v.size() != dim)
      throw Error(doc + " has a " + which + " embedding of dimension " + std::to_string(v.size()) +
                  " but earlier documents have " + std::to_string(dim));
  };
  check_dim(r.embedding_mean, dim_mean_, "mean");
  check_dim(r.embedding_last, dim_last_, "last");
  require_utf8(r.path, "the path", r.index);
  require_utf8(r.error, "the error text", r.index);
  for (const SkippedFile& sk : r.skipped_files) {
    require_utf8(sk.path, "a skipped file's path", r.index);
    require_utf8(sk.reason + sk.detail, "a skipped file's reason", r.index);
  }
  try {
    (void)r.extra.dump();  // throws on invalid UTF-8 inside
  } catch (const std::exception&) {
    throw Error(doc + ": extra holds a string that is not valid UTF-8");
  }
  done_[r.index] = 1;
  buffer_.push_back(std::move(r));
}

void ResultStore::flush() {
  if (buffer_.empty()) return;
  write_file_atomic(parts_dir() + "/" + part_name(attempt_, rank_, next_part_), encode_part(buffer_));
  ++next_part_;
  buffer_.clear();
}

void ResultStore::finalize(const Json& attributes, const std::vector<SkippedFile>& discovery_skipped) {
  if (complete_) return;
  const uint64_t n = names_.size();
  const std::string parts = parts_dir();
  const std::string final_tmp = parts + "/" + kFinalTmp;

  agree(comm_, [&] {
    if (!attributes.is_object()) throw Error("result store: the output attributes must be a JSON object");
    for (const char* reserved : kReservedAttributes)
      if (attributes.contains(reserved))
        throw Error(std::string("output attribute '") + reserved + "' is written by the result store itself");
    for (const SkippedFile& sk : discovery_skipped)
      if (!is_valid_utf8(sk.path) || !is_valid_utf8(sk.reason) || !is_valid_utf8(sk.detail))
        throw Error("skipped file record " + utf8_sanitize(sk.path) + " is not valid UTF-8");
    flush();
  });

  // Where every record is (rank 0 scans, everybody learns).
  std::string table;
  agree(comm_, [&] {
    if (rank_ != 0) return;
    int max_attempt = -1;
    PartIndex idx = scan_parts(parts, n, &max_attempt);
    std::vector<uint64_t> missing;
    // A document to compute in this attempt has no usable record until this attempt's.
    for (uint64_t i = 0; i < n; ++i)
      if (idx.at[i].first == UINT32_MAX || (needed_[i] && idx.attempt[idx.at[i].first] != attempt_)) missing.push_back(i);
    if (!missing.empty())
      throw Error("cannot finish " + out_ + ": " + std::to_string(missing.size()) + " of " + std::to_string(n) +
                  " documents have no result (first: document " + std::to_string(missing[0]) + ", " +
                  names_[missing[0]] + ")");
    ByteWriter w;
    w.u64(idx.files.size());
    for (const std::string& f : idx.files) w.str(f);
    for (const auto& [file, e] : idx.at) {
      w.u64(file);
      w.u64(e.offset);
      w.u64(e.length);
      w.u64(e.checksum);
      w.u8(e.failed);
      w.str(e.content_sha256);
    }
    table = std::move(w.bytes());
  });
  bcast_bytes(table, 0, comm_);

  // This rank's documents: a contiguous range, so that its rows are contiguous.
  const uint64_t first = n * uint64_t(rank_) / uint64_t(size_);
  const uint64_t last = n * uint64_t(rank_ + 1) / uint64_t(size_);
  std::vector<DocumentResult> docs;
  uint64_t dims[2] = {0, 0};
  agree(comm_, [&] {
    ByteReader in(table, "the parts table");
    std::vector<std::string> files(in.u64());
    for (std::string& f : files) f = in.str();
    std::vector<std::pair<uint64_t, PartEntry>> at(n);
    for (uint64_t i = 0; i < n; ++i) {
      at[i].first = in.u64();
      at[i].second.document = i;
      at[i].second.offset = in.u64();
      at[i].second.length = in.u64();
      at[i].second.checksum = in.u64();
      at[i].second.failed = in.u8() != 0;
      at[i].second.content_sha256 = in.str();
    }
    for (uint64_t i = first; i < last; ++i) {
      const std::string part = parts + "/" + files[at[i].first];
      try {
        docs.push_back(read_part_record(part, at[i].second));
      } catch (const Error& e) {
        throw Error(std::string(e.what()) + "; rerun with --repair to drop it and compute its documents again, or "
                                            "delete " + part + " yourself");
      }
      const DocumentResult& d = docs.back();
      if (!d.embedding_mean.empty()) dims[0] = std::max<uint64_t>(dims[0], d.embedding_mean.size());
      if (!d.embedding_last.empty()) dims[1] = std::max<uint64_t>(dims[1], d.embedding_last.size());
    }
  });
  uint64_t dim[2] = {0, 0};
  check_mpi(MPI_Allreduce(dims, dim, 2, MPI_UINT64_T, MPI_MAX, comm_), "MPI_Allreduce");
  agree(comm_, [&] {
    for (const DocumentResult& d : docs) {
      if (!d.embedding_mean.empty() && d.embedding_mean.size() != dim[0])
        throw Error("document " + std::to_string(d.index) + " has a mean embedding of dimension " +
                    std::to_string(d.embedding_mean.size()) + " but others have " + std::to_string(dim[0]));
      if (!d.embedding_last.empty() && d.embedding_last.size() != dim[1])
        throw Error("document " + std::to_string(d.index) + " has a last embedding of dimension " +
                    std::to_string(d.embedding_last.size()) + " but others have " + std::to_string(dim[1]));
    }
  });

  // Strings go to rank 0, which writes them with serial HDF5 (parallel HDF5 1.10 cannot
  // write variable-length data).
  ByteWriter mine;
  for (const DocumentResult& d : docs) {
    mine.str(d.path);
    mine.str(d.status);
    mine.str(d.error);
    mine.str(d.extra.dump());
    mine.str(d.content_sha256);
    mine.u64(d.files.size());
    for (const FileResult& f : d.files) {
      mine.str(f.path);
      mine.str(f.status);
      mine.str(f.header);
    }
    mine.u64(d.skipped_files.size());
    for (const SkippedFile& sk : d.skipped_files) {
      mine.str(sk.path);
      mine.str(sk.reason);
      mine.str(sk.detail);
    }
  }
  agree(comm_, [&] {
    if (mine.bytes().size() > size_t(INT_MAX))
      throw Error("the paths and messages of documents " + std::to_string(first) + ".." + std::to_string(last) +
                  " exceed 2 GiB; use more ranks");
  });
  const std::string all = gather_bytes(mine.bytes(), 0, comm_);
  const FinalLayout layout = final_layout(docs, n, first, dim[0], dim[1], comm_);

  // ok, skipped, failed documents; truncated, dropped files (rank 0 counts, every rank learns)
  uint64_t status_count[5] = {0, 0, 0, 0, 0};
  // The file is written into the parts folder, the parts untouched: when it fails (a full
  // disk), every rank stops with the same sentence and a rerun can finish the file.
  try {
    agree(comm_, [&] {
      if (rank_ != 0) return;
      FinalStrings st;
      for (const SkippedFile& sk : discovery_skipped) {
        st.skipped_document.push_back(-1);
        st.skipped_path.push_back(sk.path);
        st.skipped_reason.push_back(sk.reason);
        st.skipped_detail.push_back(sk.detail);
      }
      ByteReader in(all, "the gathered strings");
      for (uint64_t i = 0; i < n; ++i) {
        st.doc_path.push_back(in.str());
        st.doc_status.push_back(in.str());
        st.doc_error.push_back(in.str());
        st.doc_extra.push_back(in.str());
        st.doc_content_sha256.push_back(in.str());
        for (uint64_t k = in.u64(); k > 0; --k) {
          st.file_path.push_back(in.str());
          st.file_status.push_back(in.str());
          st.file_header.push_back(in.str());
        }
        for (uint64_t k = in.u64(); k > 0; --k) {
          st.skipped_document.push_back(int64_t(i));
          st.skipped_path.push_back(in.str());
          st.skipped_reason.push_back(in.str());
          st.skipped_detail.push_back(in.str());
        }
      }
      for (const std::string& status : st.doc_status)
        ++status_count[status == doc_status::kOk ? 0 : status == doc_status::kSkipped ? 1 : 2];
      for (const std::string& status : st.file_status) {
        if (status == file_status::kTruncated) ++status_count[3];
        if (status == file_status::kDropped) ++status_count[4];
      }
      write_new_file(final_tmp, final_file_image(layout.shape, st, identity_, about_, documents_hash_, attributes));
      crash_point("final_image_written");
    });
    write_final_numeric(final_tmp, layout, docs, comm_);
  } catch (const Error& e) {
    if (rank_ == 0) unlink(final_tmp.c_str());  // the space it holds may be what is missing
    throw Error(std::string(e.what()) + "; the results computed so far are kept in " + parts +
                ": free some space (or remove the cause) and rerun the same command to write " + out_);
  }
  crash_point("final_numeric_written");

  agree(comm_, [&] {
    if (rank_ != 0) return;
    fsync_file(final_tmp);
    if (std::rename(final_tmp.c_str(), out_.c_str()) != 0)
      throw Error("cannot rename " + final_tmp + " to " + out_ + ": " + std::strerror(errno));
    crash_point("final_renamed");
    fsync_dir(parent_dir(out_));
    // Only now: until the final file is in place, the parts are the results.
    remove_parts_dir(parts);
    // The lock file goes too (we still hold its lock until the store is destroyed).
    remove_file(out_ + ".lock");
    fsync_dir(parent_dir(out_));
  });
  check_mpi(MPI_Bcast(status_count, 5, MPI_UINT64_T, 0, comm_), "MPI_Bcast");
  status_counts_ = {status_count[0], status_count[1], status_count[2], status_count[3], status_count[4]};
  complete_ = true;
  summary_ = "wrote " + out_ + " (" + std::to_string(n) + " documents" +
             (status_count[0] == n ? "" : ": " + std::to_string(status_count[0]) + " ok, " +
                                              std::to_string(status_count[1]) + " skipped, " +
                                              std::to_string(status_count[2]) + " failed") +
             (status_count[3] + status_count[4] == 0
                  ? ""
                  : "; --max-tokens truncated " + std::to_string(status_count[3]) + " file(s) and dropped " +
                        std::to_string(status_count[4]) + " (see /files/status)") +
             ")";
}

}  // namespace ringscan::io
