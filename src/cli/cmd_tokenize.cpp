// ringscan tokenize: a file's ids (as HF tokenizers' encode gives them), or ids back to text.
#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace po = boost::program_options;

namespace ringscan::cli {
namespace {

std::string read_input(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error("--input " + path + ": is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("--input " + path + ": cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("--input " + path + ": read error");
  return ss.str();
}

std::vector<std::int32_t> parse_ids(const std::string& text, const std::string& path) {
  std::vector<std::int32_t> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    std::size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0 || v > INT32_MAX) {
      throw Error("--input " + path + ": expected whitespace-separated non-negative integer ids, found \"" + word +
                  "\" (token " + std::to_string(ids.size() + 1) + ")");
    }
    ids.push_back(static_cast<std::int32_t>(v));
  }
  return ids;
}

int run_tokenize(int argc, char** argv) {
  std::string tokenizer_path, input;
  po::options_description opts(
      "ringscan tokenize: print the ids of a file (HF tokenizers' encode(text, add_special_tokens=False) "
      "unless --add-special), or with --decode turn ids back into text");
  opts.add_options()("help,h", "this help")
      ("tokenizer", po::value(&tokenizer_path), "checkpoint folder or tokenizer.json")
      ("model", po::value(&tokenizer_path), "same as --tokenizer (a checkpoint folder)")
      ("input", po::value(&input)->required(), "file to read, or - for standard input")
      ("add-special", "apply the post-processor (e.g. a leading <s>), as add_special_tokens=True")
      ("decode", "read whitespace-separated ids and print their text")
      ("skip-special", "with --decode: leave special tokens out, as skip_special_tokens=True");
  po::variables_map vm;
  if (!parse_options(argc, argv, opts, vm)) return 0;
  if (tokenizer_path.empty()) throw Error("--tokenizer (or --model) is required: a checkpoint folder or tokenizer.json");
  if (vm.count("tokenizer") && vm.count("model")) throw Error("give either --tokenizer or --model, not both");
  if (vm.count("skip-special") && !vm.count("decode")) throw Error("--skip-special only applies with --decode");
  if (vm.count("add-special") && vm.count("decode")) throw Error("--add-special only applies when encoding");

  const Tokenizer tok = Tokenizer::load(tokenizer_path);
  const std::string text = read_input(input);
  if (vm.count("decode")) {
    const std::string out = tok.decode(parse_ids(text, input), vm.count("skip-special") > 0);
    std::fwrite(out.data(), 1, out.size(), stdout);
  } else {
    const std::vector<std::int32_t> ids = tok.encode(text, vm.count("add-special") > 0);
    std::string out;
    out.reserve(ids.size() * 6 + 1);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (i) out += ' ';
      out += std::to_string(ids[i]);
    }
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  if (std::fflush(stdout) != 0) throw Error("cannot write to standard output");
  return 0;
}

}  // namespace

RINGSCAN_COMMAND("tokenize", "ids of a file with a checkpoint's tokenizer, or ids back to text", run_tokenize);

}  // namespace ringscan::cli
