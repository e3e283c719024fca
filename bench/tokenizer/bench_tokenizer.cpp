// Encode throughput (MB/s of input bytes) on a list of files, on 1 thread and
// on N threads (encode_many), best of --repeat runs after one warm-up run.
// Also MB per CPU-second of the process, which other load on the machine
// disturbs less than wall-clock time (tools/tokenizer/bench_hf.py does the same).
// Also prints a SHA-256 over all ids so tools/tokenizer/bench_hf.py can check
// that HF produced the same ids on the same corpus.
//
//   bench_tokenizer --tokenizer DIR_OR_JSON --list FILES.txt [--threads 1,2] [--repeat 3]
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "util/sha256.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ringscan::Error(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) try {
  std::string tokenizer, list;
  std::vector<int> threads = {1, 2};
  int repeat = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw ringscan::Error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--tokenizer") tokenizer = next();
    else if (a == "--list") list = next();
    else if (a == "--repeat") repeat = std::stoi(next());
    else if (a == "--threads") {
      threads.clear();
      std::stringstream ss(next());
      for (std::string t; std::getline(ss, t, ',');) threads.push_back(std::stoi(t));
    } else {
      throw ringscan::Error("unknown option " + a +
                            " (usage: bench_tokenizer --tokenizer PATH --list FILES [--threads 1,2] [--repeat 3])");
    }
  }
  if (tokenizer.empty() || list.empty()) throw ringscan::Error("--tokenizer and --list are required");
  const auto load_start = std::chrono::steady_clock::now();
  const ringscan::Tokenizer tok = ringscan::Tokenizer::load(tokenizer);
  const double load_seconds = seconds_since(load_start);
  std::vector<std::string> texts;
  std::size_t bytes = 0;
  std::ifstream files(list);
  for (std::string path; std::getline(files, path);) {
    if (path.empty()) continue;
    texts.push_back(read_file(path));
    bytes += texts.back().size();
  }
  if (texts.empty()) throw ringscan::Error(list + ": no files listed");

  // Warm-up and the ids' checksum: the same bytes bench_hf.py hashes.
  std::string all_ids;
  std::size_t n_ids = 0;
  for (const auto& ids : tok.encode_many(texts, false, 1)) {
    for (std::int32_t id : ids) all_ids += std::to_string(id) + ' ';
    all_ids += '\n';
    n_ids += ids.size();
  }
  std::printf("corpus: %zu files, %.2f MB, %zu ids (%.2f bytes/id), vocab %d (loaded in %.3f s)\n", texts.size(),
              bytes / 1e6, n_ids, static_cast<double>(bytes) / static_cast<double>(n_ids), tok.vocab_size(),
              load_seconds);
  std::printf("ids sha256: %s\n", ringscan::sha256_hex(all_ids).c_str());
  for (int t : threads) {
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < repeat; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = process_cpu_seconds();
      const auto out = tok.encode_many(texts, false, t);
      best_cpu = std::min(best_cpu, process_cpu_seconds() - c0);
      best = std::min(best, seconds_since(t0));
      if (out.size() != texts.size()) throw ringscan::Error("encode_many lost texts");
    }
    std::printf("ringscan  threads=%d  %8.2f MB/s  (%.3f s)  %8.2f MB per CPU-s\n", t, bytes / 1e6 / best, best,
                bytes / 1e6 / best_cpu);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_tokenizer: error: %s\n", e.what());
  return 1;
}
