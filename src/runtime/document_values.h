// What the batch jobs compute from a document's final hidden states, and how
// those values are assembled from rows held by any backend (final_hidden.h):
// on one rank block by block, or over a sequence-parallel group.
#pragma once
#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "runtime/final_hidden.h"
#include "runtime/forwarded_segments.h"
#include "runtime/layout.h"

namespace ringscan {

struct WantedOutputs {
  bool logprobs = false;    // score: log p(token t | tokens < t)
  bool embeddings = false;  // embed: mean and last final hidden state
  bool generate = false;    // summarize: new tokens after the document (runtime/decode.h)
};

struct DocumentValues {
  // logprob[t] = log p(ids[t] | ids[<t]) for t >= 1; logprob[0] is NaN (nothing predicts the first token).
  std::vector<float> logprob;
  std::vector<float> embedding_mean, embedding_last;  // [hidden] (after norm_f)
};

// One document's values on one rank, from its final hidden rows handed over
// in order, in blocks as the backend produces them.
class DocumentValuesBuilder {
 public:
  // ids: the document's, outliving the builder.
  DocumentValuesBuilder(const std::vector<int32_t>& ids, int64_t hidden_size, const WantedOutputs& want);
  // The rows of positions row0 .. row0 + block.rows().
  void add(int64_t row0, const FinalHidden& block);
  // After the last row.
  DocumentValues take();

 private:
  const std::vector<int32_t>& ids_;
  int64_t hidden_;
  WantedOutputs want_;
  DocumentValues v_;
  std::vector<double> sum_;      // of the rows so far (embeddings)
  std::vector<float> storage_;  // rows copied to the host
};

// The values of a sequence-parallel document from every group rank's
// segments: complete on group rank 0, empty on the others (collective over
// `group`). with_next[i]: segment i's ids, plus the next segment's first id
// when there is one (the target of the segment's last position).
DocumentValues gather_document_values(comm::Communicator& group, const SequenceLayout& layout,
                                      const ForwardedSegments& mine,
                                      const std::vector<std::vector<int32_t>>& with_next, int64_t hidden_size,
                                      const WantedOutputs& want);

}  // namespace ringscan
