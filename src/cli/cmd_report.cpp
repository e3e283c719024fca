// ringscan report RESULTS.h5 --out report.html: one self-contained HTML page of a result
// file (files ranked by perplexity, histogram, directories, per-file surprisal heat
// maps, summaries, the run's attributes). The page is built by io/html_report.h.
#include <boost/program_options.hpp>
#include <cstdio>

#include "cli/command.h"
#include "io/html_report.h"

namespace po = boost::program_options;

namespace ringscan::cli {
namespace {

int run_report(int argc, char** argv) {
  std::string file, out;
  po::options_description opts(
      "ringscan report RESULTS.h5 --out report.html: one self-contained HTML page (no network) of a result file");
  opts.add_options()("help,h", "this help")
      ("file", po::value(&file)->required(), "result file (also the first positional argument)")
      ("out", po::value(&out)->required(), "the HTML page to write (replaced if it exists)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_options(argc, argv, opts, vm, &pos)) return 0;
  const io::report::PageStats s = io::report::write_page(file, out);
  std::printf("ringscan report: wrote %s (%llu files, %llu with their text; %.1f MiB)\n", out.c_str(),
              (unsigned long long)s.entries, (unsigned long long)s.entries_with_text, double(s.bytes) / (1 << 20));
  return 0;
}

}  // namespace

RINGSCAN_COMMAND("report", "one self-contained HTML page of a result file: ranked files, heat maps, summaries", run_report);

}  // namespace ringscan::cli
