// What `ringscan ask` and `ringscan summarize --state` share once their state
// session is open (jobs/state_session.h): each question is one document of a
// resumable result store (io/result_store.h; docs/hdf5-schema.md, "Resume"),
// named by the job (a question's id, a file's path); the questions not done by
// an earlier attempt fork the state and decode together, and each answer is
// stored as its question finishes. So a run killed at any moment and rerun
// with the same command asks only the questions it had not finished, and its
// final file equals an uninterrupted run's.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "jobs/state_session.h"
#include "util/json_util.h"

namespace ringscan {

struct StateQuestion {
  std::string name;  // the document's name in the result file (unique)
  std::string text;  // what the state's question template wraps
};

struct StateAnswersOptions {
  std::string job;        // "ask" or "summarize": the run identity's and log lines' job
  std::string noun;       // the log's word for the questions: "question(s)", "file(s)"
  std::string text_key;   // the key of the question's text in /documents/extra
  std::string out, command_line;
  bool overwrite = false, repair = false, quiet = false;
  double progress_interval = 10;  // seconds between progress lines (not on a terminal)
  QuestionDecodeOptions decode;
  Json identity_extra = Json::object();    // the job's own options that change results
  Json attributes_extra = Json::object();  // the job's own root attributes
};

// The options both jobs take alike, from either's own (AskOptions, JobOptions:
// the same member names), for `job` with its log noun and extra key.
template <class Options>
StateAnswersOptions answers_options(const Options& o, std::string job, std::string noun, std::string text_key) {
  StateAnswersOptions a;
  a.job = std::move(job);
  a.noun = std::move(noun);
  a.text_key = std::move(text_key);
  a.out = o.out;
  a.command_line = o.command_line;
  a.overwrite = o.overwrite;
  a.repair = o.repair;
  a.quiet = o.quiet;
  a.progress_interval = o.progress_interval;
  a.decode = {o.max_new_tokens, o.batch, o.sampling, o.ignore_eos};
  return a;
}

// Collective over `world`: opens (or resumes) the store at o.out, asks the
// questions not done yet, finalizes the file and logs tokens/s and the prefill
// avoided. Returns the exit status (kExitSomeDocumentsNotOk when an answer
// failed, e.g. non-finite logits). Loads the state only when questions are left.
int answer_into_store(StateSession& s, comm::Communicator& world, const std::vector<StateQuestion>& questions,
                      const StateAnswersOptions& o);

}  // namespace ringscan
